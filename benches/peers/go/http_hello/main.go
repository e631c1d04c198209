// Command http_hello is the Go peer of examples/http_hello.rs for the
// http/hello bench: net/http answering every request with "Hello, World!",
// keep-alive on (net/http's default for HTTP/1.1).
//
//	GOMAXPROCS=N target/bench-go/http_hello [-max-seconds N]
//
// GOMAXPROCS comes from the environment as for any Go program (1 for the
// one-hub row, unset or the CPU count for the all-cores row). It listens on
// 127.0.0.1 on a port the kernel picks and prints that port alone on its
// first line of stdout. Build it with the other Go peers
// (`cargo xtask bench` does, into target/bench-go/).
//
// It stops by itself: when its stdin is a pipe and the other end closes
// (the parent exited or is done with it), or after -max-seconds.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

var body = []byte("Hello, World!")

func hello(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(body)
}

func main() {
	maxSeconds := flag.Int("max-seconds", 3600, "exit after this many seconds")
	flag.Parse()
	stopWithParent(time.Duration(*maxSeconds) * time.Second)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "http_hello: listen on 127.0.0.1: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	server := &http.Server{Handler: http.HandlerFunc(hello), ReadHeaderTimeout: 10 * time.Second}
	if err := server.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "http_hello: serve: %v\n", err)
		os.Exit(1)
	}
}

// stopWithParent ends the process after limit, and when stdin is a pipe,
// as soon as its writer closes it.
func stopWithParent(limit time.Duration) {
	time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "http_hello: stopping after -max-seconds (%v)\n", limit)
		os.Exit(0)
	})
	if info, err := os.Stdin.Stat(); err == nil && info.Mode()&os.ModeNamedPipe != 0 {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
}
