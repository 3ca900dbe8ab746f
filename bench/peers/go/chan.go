package main

// The channel workloads of peer.h, on Go's own channels.

// pingPongN is PEER_PINGPONG_N.
const pingPongN = 20000

// pingPong sends i = 0, 1, ... on an unbuffered channel to a goroutine
// that answers i + 1 on another, and returns the sum of the answers.
func pingPong() uint64 {
	ping, pong := make(chan uint64), make(chan uint64)
	go func() {
		for i := 0; i < pingPongN; i++ {
			pong <- <-ping + 1
		}
	}()
	var sum uint64
	for i := uint64(0); i < pingPongN; i++ {
		ping <- i
		sum += <-pong
	}
	return sum
}

// PEER_CHAN_CAP, PEER_CHAN_PRODUCERS, PEER_CHAN_CONSUMERS, PEER_CHAN_ITEMS.
const (
	chanCap       = 64
	chanProducers = 4
	chanConsumers = 4
	chanItems     = 1000000
)

// buffered4x4 runs 4 producers and 4 consumers on one channel of capacity
// chanCap. Producer p sends p+1, p+1+4, ...: together 1..chanItems, each
// once. Each consumer receives a quarter and sends its sum back.
func buffered4x4() uint64 {
	ch := make(chan uint64, chanCap)
	sums := make(chan uint64, chanConsumers)
	for c := 0; c < chanConsumers; c++ {
		go func() {
			var sum uint64
			for i := 0; i < chanItems/chanConsumers; i++ {
				sum += <-ch
			}
			sums <- sum
		}()
	}
	for p := uint64(0); p < chanProducers; p++ {
		go func(p uint64) {
			for i := uint64(0); i < chanItems/chanProducers; i++ {
				ch <- i*chanProducers + p + 1
			}
		}(p)
	}
	var sum uint64
	for c := 0; c < chanConsumers; c++ {
		sum += <-sums
	}
	return sum
}
