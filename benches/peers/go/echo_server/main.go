// Command echo_server is the Go peer of the servers in benches/net.rs: a
// goroutine per connection reading 64-byte requests with io.ReadFull and
// writing each back whole.
//
//	GOMAXPROCS=1 taskset -c CPU target/bench-go/echo_server [-max-seconds N]
//
// It listens twice on 127.0.0.1, on ports the kernel picks, and prints each
// port alone on a line of stdout: first the persistent server (echoes until
// the client closes: net/echo_1conn, net/echo_64conn,
// pool/server_2threads), then the one-shot server (echoes one request, then
// closes first: net/connect_accept). `cargo xtask bench` runs it pinned with
// GOMAXPROCS=1 to the CPU of the net bench's client for the net/ rows, and
// with GOMAXPROCS=2 unpinned for pool/server_2threads, and names it to the
// bench in GREEN_BENCH_EXTERNAL_ECHO (xtask/src/peers/go.rs).
//
// It stops by itself: when its stdin is a pipe and the other end closes
// (the parent exited or is done with it), or after -max-seconds.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// msg is the size of a request and of its echo.
const msg = 64

func main() {
	maxSeconds := flag.Int("max-seconds", 3600, "exit after this many seconds")
	flag.Parse()
	stopWithParent(time.Duration(*maxSeconds) * time.Second)

	persistent, oneShot := listen(), listen()
	fmt.Println(persistent.Addr().(*net.TCPAddr).Port)
	fmt.Println(oneShot.Addr().(*net.TCPAddr).Port)
	go acceptLoop(oneShot, false)
	acceptLoop(persistent, true)
}

func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo_server: listen on 127.0.0.1: %v\n", err)
		os.Exit(1)
	}
	return ln
}

// acceptLoop serves every connection of ln in a goroutine of its own.
func acceptLoop(ln net.Listener, persistent bool) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "echo_server: accept: %v\n", err)
			os.Exit(1)
		}
		go serve(conn, persistent)
	}
}

// serve echoes 64-byte messages until the client closes, or only one when
// not persistent. Go's TCP connections have TCP_NODELAY set already, as the
// Rust servers set it.
func serve(conn net.Conn, persistent bool) {
	defer conn.Close()
	var buf [msg]byte
	for {
		if _, err := io.ReadFull(conn, buf[:]); err != nil {
			return
		}
		if _, err := conn.Write(buf[:]); err != nil || !persistent {
			return
		}
	}
}

// stopWithParent ends the process after limit, and when stdin is a pipe,
// as soon as its writer closes it.
func stopWithParent(limit time.Duration) {
	time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "echo_server: stopping after -max-seconds (%v)\n", limit)
		os.Exit(0)
	})
	if info, err := os.Stdin.Stat(); err == nil && info.Mode()&os.ModeNamedPipe != 0 {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
}
