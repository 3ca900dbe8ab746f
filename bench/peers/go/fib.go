package main

// fib spawns fib(n-1) as a goroutine, computes fib(n-2) itself and waits
// for the goroutine's result on a channel.
func fib(n uint64) uint64 {
	if n < 2 {
		return n
	}
	c := make(chan uint64, 1)
	go func() { c <- fib(n - 1) }()
	y := fib(n - 2)
	return <-c + y
}
