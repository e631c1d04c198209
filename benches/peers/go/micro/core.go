package main

// core/spawn_join and core/yield_10k.
//
// | bench | what one operation is |
// | --- | --- |
// | core/spawn_join | `go f(ch)` of a goroutine that sends a constant on its own 1-slot channel, then receiving it (the channel is the join handle; the value is moved out) |
// | core/yield_10k | one runtime.Gosched() of one of 10 000 goroutines that loop on Gosched-then-count |

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"green/benches/peers/go/internal/harness"
)

const (
	spawnJoin = "core/spawn_join"
	yield10k  = "core/yield_10k"
)

// yielders alive at once in core/yield_10k.
const yielders = 10_000

// sink keeps the compiler from dropping a result nobody reads.
var sink uint32

// sendOne is the spawned goroutine of core/spawn_join. Its channel comes as
// an argument, not a captured variable, so spawning it allocates no closure.
func sendOne(result chan<- uint32) {
	result <- 1
}

func runSpawnJoin(h *harness.Harness) {
	h.Bench(spawnJoin).
		Note("GOMAXPROCS=1: go f(ch) of a goroutine sending a constant on a fresh 1-slot channel, "+
			"then <-ch (the channel is the join handle, the value moved out); the goroutine has exited "+
			"by the next spawn; stacks reused from the runtime's free list").
		IterCustom(func(iters uint64) time.Duration {
			var got uint32
			start := time.Now()
			for i := uint64(0); i < iters; i++ {
				result := make(chan uint32, 1)
				go sendOne(result)
				got += <-result
			}
			took := time.Since(start)
			sink += got
			return took
		}, nil)
}

func runYield10k(h *harness.Harness) {
	// The counter is atomic because the Go memory model requires it of
	// data shared between goroutines, whatever GOMAXPROCS is; on one thread
	// the add is uncontended, and the note gives what it costs alone.
	var turns atomic.Uint64
	var stop atomic.Bool
	done := make(chan struct{})
	for i := 0; i < yielders; i++ {
		go func() {
			for !stop.Load() {
				runtime.Gosched()
				turns.Add(1)
			}
			done <- struct{}{}
		}()
	}
	// Every yielder runs to its first yield and counts once before the clock.
	for turns.Load() < yielders {
		runtime.Gosched()
	}

	var rounds, mainYields uint64
	h.Bench(yield10k).
		OpsPerIter(yielders).
		IterCustom(func(iters uint64) time.Duration {
			target := turns.Load() + iters*yielders
			start := time.Now()
			for turns.Load() < target {
				runtime.Gosched()
				mainYields++
			}
			took := time.Since(start)
			rounds += iters
			return took
		}, func() string {
			return fmt.Sprintf("GOMAXPROCS=1: 10 000 goroutines looping runtime.Gosched() then an atomic "+
				"add to the shared count (the add alone: %.1f ns); ns per yield; the timing goroutine "+
				"yielded %.2f times per round", atomicAddNs(), float64(mainYields)/float64(rounds))
		})

	stop.Store(true)
	for i := 0; i < yielders; i++ {
		<-done
	}
}

// atomicAddNs is the time of one uncontended atomic add on this thread, so
// a reader can take it out of the yield figure.
func atomicAddNs() float64 {
	const n = 10_000_000
	var counter atomic.Uint64
	start := time.Now()
	for i := 0; i < n; i++ {
		counter.Add(1)
	}
	took := time.Since(start)
	sink += uint32(counter.Load())
	return float64(took.Nanoseconds()) / n
}
