// Package harness times Go peer benches the way benches/support/harness.rs
// times the Rust ones, so their rows sit beside green's in one report.
//
// It reads the same variables (GREEN_BENCH_QUICK, GREEN_BENCH_FILTER,
// GREEN_BENCH_OUT, GREEN_BENCH_PROGRESS), calibrates an iteration count that
// fills one sample, warms up, then takes the same number of samples of the
// same length, and appends one JSON line
// {"bench","subject","median","min","max","unit","note"} per case to the
// file GREEN_BENCH_OUT names. With GREEN_BENCH_PROGRESS=PREFIX it writes a
// line "[PREFIX] bench go: step" to stderr at each step, which
// `cargo xtask bench` shows as its progress line. Only the plan (warm-up,
// sample length, sample count) and the lines must stay in step with the
// Rust harness; the code is Go's own.
package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Subject is the name every row of these programs carries.
const Subject = "go"

// Harness holds the settings read from the environment.
type Harness struct {
	Quick    bool
	filter   string
	out      string
	progress string
}

// FromEnv reads GREEN_BENCH_QUICK, GREEN_BENCH_FILTER, GREEN_BENCH_OUT and
// GREEN_BENCH_PROGRESS.
func FromEnv() *Harness {
	quick := os.Getenv("GREEN_BENCH_QUICK")
	return &Harness{
		Quick:    quick != "" && quick != "0",
		filter:   os.Getenv("GREEN_BENCH_FILTER"),
		out:      os.Getenv("GREEN_BENCH_OUT"),
		progress: os.Getenv("GREEN_BENCH_PROGRESS"),
	}
}

// Progress says that bench is at step ("warm-up", "sample 3/50", "run 2/3")
// when GREEN_BENCH_PROGRESS asks for it.
func (h *Harness) Progress(bench, step string) {
	if h.progress != "" {
		fmt.Fprintf(os.Stderr, "[%s] %s %s: %s\n", h.progress, bench, Subject, step)
	}
}

// Enabled tells whether bench passes the filter (a substring of its name).
func (h *Harness) Enabled(bench string) bool {
	return h.filter == "" || strings.Contains(bench, h.filter)
}

// plan returns the warm-up, the target length of one sample and the number
// of samples: the Rust harness's figures.
func (h *Harness) plan() (time.Duration, time.Duration, int) {
	if h.Quick {
		return 20 * time.Millisecond, 2 * time.Millisecond, 10
	}
	return 200 * time.Millisecond, 10 * time.Millisecond, 50
}

// Stats are the median, min and max over samples.
type Stats struct {
	Median, Min, Max float64
}

// StatsOf sorts samples and returns their statistics; it panics when empty.
func StatsOf(samples []float64) Stats {
	if len(samples) == 0 {
		panic("harness: no samples")
	}
	sort.Float64s(samples)
	n := len(samples)
	median := samples[n/2]
	if n%2 == 0 {
		median = (samples[n/2-1] + samples[n/2]) / 2
	}
	return Stats{Median: median, Min: samples[0], Max: samples[n-1]}
}

// Case is one timed (bench, subject) pair.
type Case struct {
	h          *Harness
	bench      string
	note       string
	opsPerIter uint64
}

// Bench starts a timed case of bench for subject "go", reported in ns.
func (h *Harness) Bench(bench string) *Case {
	return &Case{h: h, bench: bench, opsPerIter: 1}
}

// Note sets the note recorded with the figures.
func (c *Case) Note(note string) *Case {
	c.note = note
	return c
}

// OpsPerIter says how many operations one iteration performs.
func (c *Case) OpsPerIter(ops uint64) *Case {
	if ops == 0 {
		panic("harness: OpsPerIter must be positive")
	}
	c.opsPerIter = ops
	return c
}

// IterCustom times routine, which runs iters iterations and returns the time
// they took (setup before its clock starts is free). noteAfter, when not
// nil, replaces the note once the samples are taken (from counters the
// routine kept). It returns the statistics in ns per operation.
func (c *Case) IterCustom(routine func(iters uint64) time.Duration, noteAfter func() string) Stats {
	warmUp, sample, samples := c.h.plan()

	// Double the count until one run fills half a sample, size the sample
	// from that rate, then keep running samples until the warm-up is over.
	warmStart := time.Now()
	c.h.Progress(c.bench, "warm-up")
	iters := uint64(1)
	for {
		took := routine(iters)
		if took >= sample/2 || iters >= 1<<40 {
			per := float64(took) / float64(iters)
			if per < 1e-3 {
				per = 1e-3
			}
			iters = uint64(float64(sample) / per)
			if iters < 1 {
				iters = 1
			}
			break
		}
		iters *= 2
	}
	for time.Since(warmStart) < warmUp {
		routine(iters)
	}

	perOp := make([]float64, samples)
	for i := range perOp {
		c.h.Progress(c.bench, fmt.Sprintf("sample %d/%d", i+1, samples))
		took := routine(iters)
		perOp[i] = float64(took.Nanoseconds()) / float64(iters*c.opsPerIter)
	}
	stats := StatsOf(perOp)
	note := c.note
	if noteAfter != nil {
		note = noteAfter()
	}
	c.h.Record(c.bench, "ns", stats, note)
	return stats
}

// Record prints the human line and appends the JSON line of one result.
func (h *Harness) Record(bench, unit string, s Stats, note string) {
	line := fmt.Sprintf("%-32s %-12s median %10s %-6s (min %s, max %s)",
		bench, Subject, fmtNum(s.Median), unit, fmtNum(s.Min), fmtNum(s.Max))
	if note != "" {
		line += "  [" + note + "]"
	}
	fmt.Println(line)

	var b strings.Builder
	b.WriteString(`{"bench":` + jsonString(bench))
	b.WriteString(`,"subject":` + jsonString(Subject))
	b.WriteString(`,"median":` + jsonNumber(s.Median))
	b.WriteString(`,"min":` + jsonNumber(s.Min))
	b.WriteString(`,"max":` + jsonNumber(s.Max))
	b.WriteString(`,"unit":` + jsonString(unit))
	if note == "" {
		b.WriteString(`,"note":null}`)
	} else {
		b.WriteString(`,"note":` + jsonString(note) + "}")
	}
	b.WriteByte('\n')
	h.appendLine(b.String())
}

func (h *Harness) appendLine(line string) {
	if h.out == "" {
		return
	}
	f, err := os.OpenFile(h.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		// One write of the whole line, so lines of concurrent writers
		// (O_APPEND) never interleave.
		_, err = f.WriteString(line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		panic(fmt.Sprintf("cannot append to GREEN_BENCH_OUT=%s: %v", h.out, err))
	}
}

// jsonString is s as a JSON string literal (no HTML escaping).
func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// jsonNumber never uses an exponent, like the Rust writer; JSON has no
// NaN or infinity, so those are null.
func jsonNumber(v float64) string {
	if v != v || v > 1e300 || v < -1e300 {
		return "null"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// fmtNum shows a figure with as many decimals as its size deserves, as the
// Rust harness prints it.
func fmtNum(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// Resident is what this process holds: RSS and page tables (VmPTE), bytes.
type Resident struct {
	RSS, PageTables uint64
}

// ResidentNow reads VmRSS and VmPTE from /proc/self/status (0 if absent).
func ResidentNow() Resident {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return Resident{}
	}
	defer f.Close()
	var r Resident
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kib, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "VmRSS:":
			r.RSS = kib * 1024
		case "VmPTE:":
			r.PageTables = kib * 1024
		}
	}
	return r
}

// Since is the growth from before to r, never negative.
func (r Resident) Since(before Resident) Resident {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return Resident{RSS: sub(r.RSS, before.RSS), PageTables: sub(r.PageTables, before.PageTables)}
}

// Total is RSS plus page tables: the per-unit figure of every idle_rss row.
func (r Resident) Total() uint64 {
	return r.RSS + r.PageTables
}
