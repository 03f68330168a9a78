package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// inContainer says whether wisp seems to run in a container, and why:
// Docker creates /.dockerenv, Podman /run/.containerenv; Podman, LXC and
// systemd-nspawn set the variable container; and under cgroup v1 the
// first process's cgroup names the runtime (docker, kubepods, containerd,
// libpod, lxc). root is the file system's root ("/" but in tests); environ
// is the process environment. Under cgroup v2 with a runtime that leaves
// no file (some Kubernetes setups), nothing tells, and it says no.
func inContainer(root string, environ []string) (bool, string) {
	for _, f := range []string{".dockerenv", "run/.containerenv"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			return true, "/" + f + " exists"
		}
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "container="); ok && v != "" {
			return true, "container=" + v + " is set"
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc/1/cgroup")); err == nil {
		for _, name := range []string{"docker", "kubepods", "containerd", "libpod", "lxc"} {
			if bytes.Contains(b, []byte(name)) {
				return true, "/proc/1/cgroup names " + name
			}
		}
	}
	return false, ""
}

// loopbackInContainer is the warning for a relay that listens on loopback
// inside a container (why says how that was told), where nothing outside the container can reach it
// (docker run -p forwards to the container's own interface), or "".
func loopbackInContainer(listen, why string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return ""
	}
	return fmt.Sprintf("WISP_LISTEN=%s is loopback, and wisp runs in a container (%s): nothing outside the container can connect "+
		"(docker run -p forwards to the container's own interface); set WISP_LISTEN=0.0.0.0:%s, as the image does unless told otherwise",
		listen, why, port)
}
