// Command go_peer runs the weft peer workloads on goroutines, with
// GOMAXPROCS = WEFT_BENCH_WORKERS (default 2; 1 while yield_pingpong
// runs). Same command line and
// output as the C and C++ peers (bench/peers/peer.h):
//
//	go_peer --list
//	go_peer <workload> [k]
//	workload=<name> runtime=go ms=<median of k> result=<checked value> rss_kib=<peak>
//
// rss_kib is the process's peak resident set (getrusage's ru_maxrss, KiB)
// at the end, over the warm-up and every timed run.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"
)

type workload struct {
	name string
	run  func() uint64
	want uint64
}

var workloads = []workload{
	{"fib/30", func() uint64 { return fib(30) }, 832040},
	{"skynet/1M", runSkynet, 499999500000},
	{"spawn_join/100k", func() uint64 { return spawnJoin(100000) }, 100000},
	{"sleepers/10k", func() uint64 { return sleepers(10000) }, 10000},
	{"sleepers/100k", func() uint64 { return sleepers(100000) }, 100000},
	{"sleepers/1M", func() uint64 { return sleepers(1000000) }, 1000000},
	{"chan_pingpong", pingPong, pingPongN * (pingPongN + 1) / 2},
	{"chan_buffered_4x4", buffered4x4, chanItems * (chanItems + 1) / 2},
	{"mutex_contended", mutexContended, mutexOps},
	{"yield_pingpong", yieldPingPong, 2 * yieldN},
	{"spawn_all/10k", spawnAll, spawnAllN * spawnAllRounds},
}

// peakRSSKiB is the process's peak resident set so far, in KiB (Linux's
// unit for Maxrss).
func peakRSSKiB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss)
}

func threads() int {
	if v, err := strconv.Atoi(os.Getenv("WEFT_BENCH_WORKERS")); err == nil && v > 0 && v <= 1024 {
		return v
	}
	return 2
}

func main() {
	runtime.GOMAXPROCS(threads())
	if len(os.Args) == 2 && os.Args[1] == "--list" {
		for _, w := range workloads {
			fmt.Println(w.name)
		}
		return
	}
	var w *workload
	for i := range workloads {
		if len(os.Args) >= 2 && os.Args[1] == workloads[i].name {
			w = &workloads[i]
		}
	}
	k := 5
	if len(os.Args) >= 3 {
		k, _ = strconv.Atoi(os.Args[2])
	}
	if w == nil || len(os.Args) > 3 || k < 1 || k > 1000 {
		fmt.Fprintf(os.Stderr, "usage: %s --list | <workload> [k]\n", os.Args[0])
		os.Exit(2)
	}

	check := func(got uint64) {
		if got != w.want {
			fmt.Fprintf(os.Stderr, "go: %s: got %d, want %d\n", w.name, got, w.want)
			os.Exit(1)
		}
	}
	check(w.run()) // warm-up
	ms := make([]float64, k)
	var result uint64
	for i := range ms {
		t0 := time.Now()
		result = w.run()
		ms[i] = float64(time.Since(t0).Nanoseconds()) / 1e6
		check(result)
	}
	sort.Float64s(ms)
	median := ms[k/2]
	if k%2 == 0 {
		median = (ms[k/2-1] + ms[k/2]) / 2
	}
	fmt.Printf("workload=%s runtime=go ms=%.3f result=%d rss_kib=%d\n", w.name, median, result, peakRSSKiB())
}
