package main

import (
	"runtime"
	"sync"
)

// yieldN is PEER_YIELD_N of peer.h.
const yieldN = 1000000

// yieldPingPong starts two goroutines that each call runtime.Gosched
// yieldN times, on one P: GOMAXPROCS is 1 for the run, then restored.
// The main goroutine waits on a WaitGroup, so the P alternates between
// the two. It returns the yields counted by both.
func yieldPingPong() uint64 {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var wg sync.WaitGroup
	var counts [2]uint64
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func(g int) {
			var n uint64
			for ; n < yieldN; n++ {
				runtime.Gosched()
			}
			counts[g] = n
			wg.Done()
		}(g)
	}
	wg.Wait()
	return counts[0] + counts[1]
}
