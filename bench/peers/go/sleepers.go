package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// sleepMs is PEER_SLEEP_MS of peer.h.
const sleepMs = 1000

// sleepers starts n goroutines that each sleep sleepMs from their own
// start, waits for all of them on a WaitGroup and returns how many woke.
func sleepers(n int) uint64 {
	var wg sync.WaitGroup
	var woke atomic.Uint64
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			time.Sleep(sleepMs * time.Millisecond)
			woke.Add(1)
			wg.Done()
		}()
	}
	wg.Wait()
	return woke.Load()
}
