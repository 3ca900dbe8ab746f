package main

// skynet is github.com/atemerev/skynet's Go version: each node starts its
// 10 children as goroutines and sums what they send back.
func skynet(c chan<- uint64, num, size, div uint64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan uint64, div)
	for i := uint64(0); i < div; i++ {
		go skynet(rc, num+i*(size/div), size/div, div)
	}
	var sum uint64
	for i := uint64(0); i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func runSkynet() uint64 {
	c := make(chan uint64, 1)
	go skynet(c, 0, 1000000, 10)
	return <-c
}
