package main

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
