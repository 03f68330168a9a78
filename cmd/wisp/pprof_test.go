package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// The profiler is served on its own address only, never on the relay's.
func TestPprofOnItsOwnAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr := ln.Addr().String()
	ln.Close()
	addr, _, _ := startWisp(t, "WISP_PPROF_LISTEN="+pprofAddr)

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("http://" + pprofAddr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("profiler index: %d %.200s", code, body)
	}
	if code, _ := get("http://" + addr + "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("profiler reachable on the relay's address: %d", code)
	}
}

func TestPprofBadAddress(t *testing.T) {
	err := run(t.Context(), nil, []string{"WISP_DATA_DIR=" + t.TempDir(), "WISP_PPROF_LISTEN=nowhere"}, nil, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "WISP_PPROF_LISTEN") {
		t.Fatalf("bad WISP_PPROF_LISTEN: %v", err)
	}
}
