package main

// sync/event_pingpong, sync/queue_pingpong and sync/lock_contended_100.
//
// | bench | what one operation is |
// | --- | --- |
// | sync/event_pingpong | one one-way hand-off between two goroutines through two events (a flag guarded by a sync.Mutex, with a sync.Cond to wait on): set, wait, clear |
// | sync/queue_pingpong | one one-way trip of an integer between two goroutines through two unbuffered channels (send, receive) |
// | sync/lock_contended_100 | one hand-over of a sync.Mutex among 100 goroutines that each lock it, yield, unlock it and yield |
//
// Go has no Event. The level-triggered flag that set wakes every waiter of,
// wait returns at once on, and clear lowers is what sync.Cond over a flag
// gives (Python's threading.Event is built the same way); a channel is a
// queue, measured by queue_pingpong, not a flag that stays set.
//
// The contended lock runs the loop of the Rust bench: take, yield, count,
// release, yield. sync.Mutex, like green's Lock, lets a goroutine that does
// not block take a free mutex ahead of its waiters (until a waiter has waited
// 1 ms, when it turns to hand-off), so the yield after the release is what
// lets the woken waiter take it; the note gives the share of acquisitions
// that changed owner.

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"green/benches/peers/go/internal/harness"
)

const (
	eventPingpong = "sync/event_pingpong"
	queuePingpong = "sync/queue_pingpong"
	lockContended = "sync/lock_contended_100"
)

// contenders for the mutex in sync/lock_contended_100.
const contenders = 100

// event is a set/wait/clear flag: sync.Cond over a bool.
type event struct {
	mu     sync.Mutex
	cond   sync.Cond
	raised bool
}

func newEvent() *event {
	e := &event{}
	e.cond.L = &e.mu
	return e
}

func (e *event) set() {
	e.mu.Lock()
	e.raised = true
	e.cond.Broadcast()
	e.mu.Unlock()
}

func (e *event) wait() {
	e.mu.Lock()
	for !e.raised {
		e.cond.Wait()
	}
	e.mu.Unlock()
}

func (e *event) clear() {
	e.mu.Lock()
	e.raised = false
	e.mu.Unlock()
}

func runEventPingpong(h *harness.Harness) {
	ping, pong := newEvent(), newEvent()
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		for {
			ping.wait()
			ping.clear()
			if stop.Load() {
				break
			}
			pong.set()
		}
		close(done)
	}()
	h.Bench(eventPingpong).
		OpsPerIter(2).
		Note("GOMAXPROCS=1: main goroutine and one partner, two events each a bool under a sync.Mutex "+
			"with a sync.Cond (Go has no Event); a round is set (Broadcast) / wait / clear each way; "+
			"ns per one-way hand-off").
		IterCustom(func(iters uint64) time.Duration {
			start := time.Now()
			for i := uint64(0); i < iters; i++ {
				ping.set()
				pong.wait()
				pong.clear()
			}
			return time.Since(start)
		}, nil)
	stop.Store(true)
	ping.set()
	<-done
}

func runQueuePingpong(h *harness.Harness) {
	toPartner, toMain := make(chan uint64), make(chan uint64)
	done := make(chan struct{})
	// Ends when the main goroutine closes its channel.
	go func() {
		for n := range toPartner {
			toMain <- n + 1
		}
		close(done)
	}()
	var n uint64
	h.Bench(queuePingpong).
		OpsPerIter(2).
		Note("GOMAXPROCS=1: main goroutine and one partner, two unbuffered channels; a round is "+
			"send / receive each way; ns per one-way trip").
		IterCustom(func(iters uint64) time.Duration {
			start := time.Now()
			for i := uint64(0); i < iters; i++ {
				toPartner <- n
				n = <-toMain
			}
			return time.Since(start)
		}, nil)
	close(toPartner)
	<-done
}

func runLockContended(h *harness.Harness) {
	var mu sync.Mutex
	// Guarded by mu.
	var acquisitions, handovers uint64
	lastOwner := -1
	// The acquisition count at which reached gets a token for the timer.
	var target atomic.Uint64
	target.Store(^uint64(0))
	reached := make(chan struct{}, 1)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for id := 0; id < contenders; id++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			for !stop.Load() {
				mu.Lock()
				runtime.Gosched()
				if lastOwner != id {
					handovers++
					lastOwner = id
				}
				acquisitions++
				if acquisitions == target.Load() {
					reached <- struct{}{}
				}
				mu.Unlock()
				// Without it this goroutine would take the free mutex
				// again ahead of the one woken for it (file comment).
				runtime.Gosched()
			}
		}(id)
	}

	// Figures over every run, taken under the mutex, for the note.
	counts := func() (uint64, uint64) {
		mu.Lock()
		defer mu.Unlock()
		return acquisitions, handovers
	}
	firstAcq, firstHand := counts()
	h.Bench(lockContended).
		IterCustom(func(iters uint64) time.Duration {
			// The count is read and the target set under the mutex, so no
			// contender reaches the target before it is set; taking it is
			// setup, outside the clock.
			mu.Lock()
			target.Store(acquisitions + iters)
			mu.Unlock()
			start := time.Now()
			<-reached
			return time.Since(start)
		}, func() string {
			acq, hand := counts()
			return fmt.Sprintf("GOMAXPROCS=1: 100 goroutines each looping Lock / Gosched / Unlock / "+
				"Gosched on one sync.Mutex; ns per hand-over (time / acquisitions; %.1f%% of "+
				"acquisitions changed owner)", 100*float64(hand-firstHand)/float64(max64(acq-firstAcq, 1)))
		})

	stop.Store(true)
	wg.Wait()
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
