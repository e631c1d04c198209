// Command micro runs the Go peer of green's one-hub benches: the same bench
// names and the same operation per figure as the Rust benches, subject "go".
//
//	micro [BENCH...]
//
// runs the named benches (all of them when none is named) that pass
// GREEN_BENCH_FILTER, and appends their rows to GREEN_BENCH_OUT; see
// internal/harness. `cargo xtask bench` builds it into target/bench-go/ and
// runs it once per bench.
//
// Every bench here is a one-hub row: the program sets GOMAXPROCS to 1 itself,
// so the scheduler runs every goroutine on one thread, as green's hub,
// tokio's current-thread runtime and may's one worker do. (The runtime's
// background threads, such as sysmon, still exist; they are part of what Go
// costs.)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"green/benches/peers/go/internal/harness"
)

// A bench: its name and the function that measures it.
type bench struct {
	name string
	run  func(h *harness.Harness)
}

// benches is every bench of this program, in the order they run.
var benches = []bench{
	{spawnJoin, runSpawnJoin},
	{yield10k, runYield10k},
	{eventPingpong, runEventPingpong},
	{queuePingpong, runQueuePingpong},
	{lockContended, runLockContended},
	{idleRSS, runIdleRSS},
	{millionSleepers, runMillionSleepers},
}

func main() {
	runtime.GOMAXPROCS(1)
	h := harness.FromEnv()
	if rssChild(h) {
		return
	}
	names := os.Args[1:]
	if len(names) == 1 && names[0] == "--list" {
		for _, b := range benches {
			fmt.Println(b.name)
		}
		return
	}
	for _, name := range names {
		if !known(name) {
			fmt.Fprintf(os.Stderr, "micro: unknown bench %q (run with --list for the names)\n", name)
			os.Exit(2)
		}
	}
	for _, b := range benches {
		if len(names) > 0 && !contains(names, b.name) {
			continue
		}
		if h.Enabled(b.name) {
			b.run(h)
		}
	}
}

func known(name string) bool {
	for _, b := range benches {
		if b.name == name {
			return true
		}
	}
	return false
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}
