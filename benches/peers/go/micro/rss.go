package main

// core/idle_rss and core/million_sleepers.
//
// | bench | what is measured |
// | --- | --- |
// | core/idle_rss | growth of (RSS + page tables) from before 100 000 goroutines are started to when all are in time.Sleep(1 h), / 100 000, bytes |
// | core/million_sleepers | seconds to start 1 000 000 goroutines and have all of them in time.Sleep(1 h); median, min and max of 3 fresh processes, each run's time and memory in the note (skipped with --quick) |
//
// Each case runs in a child process (this program again, with
// GREEN_GO_RSS_CASE set), so its "before" is a fresh process whose heap and
// stack free lists nothing else has filled, as the Rust bench does. The
// per-unit figure counts page tables (VmPTE) as well as RSS, as every
// subject's does.

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"green/benches/peers/go/internal/harness"
)

const (
	idleRSS         = "core/idle_rss"
	millionSleepers = "core/million_sleepers"
)

const (
	// caseVar names the case a child process runs.
	caseVar = "GREEN_GO_RSS_CASE"
	// idle goroutines of core/idle_rss.
	idle = 100_000
	// million goroutines of core/million_sleepers.
	million = 1_000_000
	// millionRuns fresh processes each put a million goroutines to sleep.
	millionRuns = 3
	// millionResult starts the line a million child prints: seconds, then
	// RSS growth and page-table growth in bytes.
	millionResult = "million-result"
	// long enough that no sleeper wakes while it is measured.
	long = time.Hour

	mib = 1024.0 * 1024.0
	gib = 1024.0 * mib
)

// rssChild runs the case a parent asked for, if any; true if it did.
func rssChild(h *harness.Harness) bool {
	switch os.Getenv(caseVar) {
	case "":
		return false
	case "idle":
		idleChild(h)
	case "million":
		millionChild()
	default:
		panic(fmt.Sprintf("%s=%s: expected idle or million", caseVar, os.Getenv(caseVar)))
	}
	return true
}

// runCase runs this program again with case set and returns its stdout.
func runCase(name string) string {
	exe, err := os.Executable()
	if err != nil {
		panic(fmt.Sprintf("path of this program: %v", err))
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), caseVar+"="+name)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		panic(fmt.Sprintf("case %s in a child process failed: %v", name, err))
	}
	return string(out)
}

func runIdleRSS(h *harness.Harness) {
	h.Progress(idleRSS, "fresh process")
	// The child records its own row; pass its lines through.
	fmt.Print(runCase("idle"))
}

// sleepAll starts n goroutines that each count themselves, then sleep an
// hour, and returns once all have counted (each is then in, or about to
// enter, its sleep: with GOMAXPROCS=1 none runs between the count and the
// sleep call unless it is preempted there).
func sleepAll(n int64) {
	var asleep atomic.Int64
	for i := int64(0); i < n; i++ {
		go func() {
			asleep.Add(1)
			time.Sleep(long)
		}()
	}
	for asleep.Load() < n {
		runtime.Gosched()
	}
	// One more turn so that the last ones to count are in time.Sleep.
	runtime.Gosched()
}

func idleChild(h *harness.Harness) {
	before := harness.ResidentNow()
	sleepAll(idle)
	grown := harness.ResidentNow().Since(before)
	per := float64(grown.Total()) / idle
	note := fmt.Sprintf("GOMAXPROCS=1: %d goroutines in time.Sleep(1 h) (growable stacks the "+
		"runtime sizes, 2 KiB at least); per goroutine = (RSS + page tables) / %d; RSS +%.1f MiB, page tables "+
		"(VmPTE) +%.1f MiB", idle, idle, float64(grown.RSS)/mib, float64(grown.PageTables)/mib)
	h.Record(idleRSS, "bytes", harness.Stats{Median: per, Min: per, Max: per}, note)
}

func millionChild() {
	before := harness.ResidentNow()
	start := time.Now()
	sleepAll(million)
	secs := time.Since(start).Seconds()
	grown := harness.ResidentNow().Since(before)
	fmt.Printf("%s %g %d %d\n", millionResult, secs, grown.RSS, grown.PageTables)
}

func runMillionSleepers(h *harness.Harness) {
	if h.Quick {
		fmt.Printf("%-32s skipped with --quick\n", millionSleepers)
		return
	}
	secs := make([]float64, 0, millionRuns)
	each := make([]string, 0, millionRuns)
	for i := 0; i < millionRuns; i++ {
		h.Progress(millionSleepers, fmt.Sprintf("run %d/%d", i+1, millionRuns))
		found := false
		for _, line := range strings.Split(runCase("million"), "\n") {
			if !strings.HasPrefix(line, millionResult) {
				if line != "" {
					fmt.Println(line)
				}
				continue
			}
			f := strings.Fields(strings.TrimPrefix(line, millionResult))
			if len(f) != 3 {
				panic(fmt.Sprintf("%s line lacks its fields: %q", millionResult, line))
			}
			s, err1 := strconv.ParseFloat(f[0], 64)
			rss, err2 := strconv.ParseUint(f[1], 10, 64)
			pte, err3 := strconv.ParseUint(f[2], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				panic(fmt.Sprintf("%s line does not parse: %q", millionResult, line))
			}
			found = true
			secs = append(secs, s)
			each = append(each, fmt.Sprintf("%.2f s, RSS +%.2f GiB, page tables +%.0f MiB (%d B per goroutine)",
				s, float64(rss)/gib, float64(pte)/mib, (rss+pte)/million))
		}
		if !found {
			panic("a million child printed no result line")
		}
	}
	stats := harness.StatsOf(secs)
	note := fmt.Sprintf("GOMAXPROCS=1: %d goroutines started and in time.Sleep(1 h); median, min and "+
		"max of %d fresh processes; each run in order: %s", million, millionRuns, strings.Join(each, "; "))
	h.Record(millionSleepers, "s", stats, note)
}
