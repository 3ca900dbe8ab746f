package main

import "sync"

// spawnJoin starts one goroutine and waits for its result, n times in a
// row, from the calling goroutine.
func spawnJoin(n int) uint64 {
	var sum uint64
	for i := 0; i < n; i++ {
		c := make(chan uint64, 1)
		go func() { c <- 1 }()
		sum += <-c
	}
	return sum
}

// PEER_SPAWN_ALL_N and PEER_SPAWN_ALL_ROUNDS of peer.h.
const (
	spawnAllN      = 10000
	spawnAllRounds = 10
)

// spawnAll starts spawnAllN goroutines that each store 1 in their slot
// of a slice, waits for all on a WaitGroup and sums the slice;
// spawnAllRounds rounds.
func spawnAll() uint64 {
	res := make([]uint64, spawnAllN)
	var sum uint64
	for r := 0; r < spawnAllRounds; r++ {
		var wg sync.WaitGroup
		wg.Add(spawnAllN)
		for i := 0; i < spawnAllN; i++ {
			go func(i int) {
				res[i] = 1
				wg.Done()
			}(i)
		}
		wg.Wait()
		for i := range res {
			sum += res[i]
			res[i] = 0
		}
	}
	return sum
}
