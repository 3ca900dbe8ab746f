package main

import "sync"

// PEER_MUTEX_TASKS and PEER_MUTEX_OPS of peer.h.
const (
	mutexTasks = 64
	mutexOps   = 1000000
)

// mutexContended starts mutexTasks goroutines that each lock a
// sync.Mutex, increment a shared counter and unlock, mutexOps/mutexTasks
// times; it returns the counter.
func mutexContended() uint64 {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var counter uint64
	wg.Add(mutexTasks)
	for t := 0; t < mutexTasks; t++ {
		go func() {
			for i := 0; i < mutexOps/mutexTasks; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return counter
}
