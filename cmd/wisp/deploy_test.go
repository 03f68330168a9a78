package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// openDir is a temporary directory any user may enter.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// asOtherUser runs the built wisp as a user that does not own dir: uid
// 10001 (the image's) when the test runs as root, this user otherwise, with
// dir made read-only. It returns the exit code and standard error.
func asOtherUser(t *testing.T, bin, dir string, env []string, args ...string) (int, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	uid := os.Getuid()
	if uid == 0 {
		uid = 10001
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 10001, Gid: 10001}}
	} else if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String(), uid
}

// A data directory wisp cannot write (a root-owned bind mount, in Docker)
// is refused before SQLite tries, naming the user wisp runs as and the
// directory's owner.
func TestDataDirNotWritable(t *testing.T) {
	bin := filepath.Join(openDir(t), "wisp")
	if err := os.Rename(buildWisp(t), bin); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"serve"}, {"import", os.DevNull}} {
		dir := openDir(t) // owned by this user, mode 0755
		env := []string{"WISP_DATA_DIR=" + dir, "WISP_LISTEN=127.0.0.1:0"}
		code, stderr, uid := asOtherUser(t, bin, dir, env, cmd...)
		want := regexp.MustCompile(`^wisp: the data directory \S+ is not writable by uid ` + strconv.Itoa(uid) + `\b.*: it is owned by uid ` + strconv.Itoa(os.Getuid()) + `\b.*mode d.*give it to uid ` + strconv.Itoa(uid) + ` \(chown -R`)
		if code != 1 || !want.MatchString(stderr) {
			t.Errorf("wisp %v on a directory it cannot write: exit %d\n%s", cmd, code, stderr)
		}
		if strings.Contains(stderr, "unable to open database file") {
			t.Errorf("wisp %v: SQLite's message, not ours:\n%s", cmd, stderr)
		}
	}
}

// A second wisp serve on a data directory in use is refused, saying by
// whom; once the first stops, the directory is free again.
func TestSecondServeRefused(t *testing.T) {
	addr, dir, _ := startWisp(t)
	err := run(t.Context(), nil, []string{"WISP_DATA_DIR=" + dir, "WISP_LISTEN=127.0.0.1:0"}, nil, nil, &bytes.Buffer{}, nil)
	want := regexp.MustCompile(`^the data directory \S+ is in use by another wisp serve \(pid \d+, started \S+\); one wisp serve per data directory`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Fatalf("second serve on %s: %v", dir, err)
	}
	// The commands that share the database with serve are not locked out.
	runOK(t, []string{"WISP_DATA_DIR=" + dir}, "stats")
	runOK(t, []string{"WISP_DATA_DIR=" + dir}, "scan", "{}")
	c := dialWisp(t, addr)
	c.send("REQ", "q", map[string]any{})
	if m := c.next(); string(m[0]) != `"EOSE"` {
		t.Fatalf("the first relay stopped serving: %s", m)
	}

	// Stopped, it releases the directory.
	dir2 := t.TempDir()
	for range 2 {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, nil, []string{"WISP_DATA_DIR=" + dir2, "WISP_LISTEN=127.0.0.1:0"}, nil, nil, &bytes.Buffer{}, func(net.Addr) { cancel() })
		}()
		if err := <-done; err != nil {
			t.Fatalf("serve after a serve stopped: %v", err)
		}
	}
}

// Inside a container, a relay on loopback cannot be reached from outside:
// wisp says so in its log.
func TestLoopbackWarningInContainer(t *testing.T) {
	// container=docker tells, and so may this machine (/.dockerenv).
	const warning = "is loopback, and wisp runs in a container ("
	_, _, logs := startWisp(t, "container=docker")
	if !strings.Contains(logs.String(), "WISP_LISTEN=127.0.0.1:0 "+warning) {
		t.Errorf("no warning in a container on loopback:\n%s", logs)
	}
	_, _, logs = startWisp(t, "container=docker", "WISP_LISTEN=0.0.0.0:0")
	if strings.Contains(logs.String(), warning) {
		t.Errorf("warned on every interface:\n%s", logs)
	}
}

func TestInContainer(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		env   []string
		why   string
	}{
		{"docker", map[string]string{".dockerenv": ""}, nil, "/.dockerenv exists"},
		{"podman", map[string]string{"run/.containerenv": ""}, nil, "/run/.containerenv exists"},
		{"nspawn", nil, []string{"container=systemd-nspawn"}, "container=systemd-nspawn is set"},
		{"cgroup v1", map[string]string{"proc/1/cgroup": "12:cpu,cpuacct:/kubepods/besteffort/pod1\n"}, nil, "/proc/1/cgroup names kubepods"},
		{"host, cgroup v2", map[string]string{"proc/1/cgroup": "0::/init.scope\n"}, []string{"container="}, ""},
	} {
		root := t.TempDir()
		for name, content := range tt.files {
			path := filepath.Join(root, name)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		in, why := inContainer(root, tt.env)
		if in != (tt.why != "") || why != tt.why {
			t.Errorf("%s: inContainer = %v %q, want %q", tt.name, in, why, tt.why)
		}
	}
	for listen, warn := range map[string]bool{"127.0.0.1:4869": true, "[::1]:4869": true, "localhost:4869": true, "0.0.0.0:4869": false, "10.0.0.5:4869": false} {
		if got := loopbackInContainer(listen, "test") != ""; got != warn {
			t.Errorf("loopbackInContainer(%s) warns: %v, want %v", listen, got, warn)
		}
	}
}

// wisp health exits 0 only when the relay at WISP_LISTEN answers NIP-11,
// a wisp serve holds WISP_DATA_DIR, and that directory can be written.
func TestHealth(t *testing.T) {
	addr, dir, _ := startWisp(t)
	health := func(env ...string) (string, string, int) {
		return runEnvArgs(t, env, "health", "--timeout", "5s")
	}
	out, errOut, code := health("WISP_LISTEN="+addr, "WISP_DATA_DIR="+dir)
	if code != 0 || !regexp.MustCompile(`^healthy: http://\S+/ answers NIP-11 \(wisp \S+\); \S+ is writable by uid \d+.*, [\d.]+ [KMGT]?i?B free\n$`).MatchString(out) {
		t.Errorf("healthy relay: exit %d, %q %q", code, out, errOut)
	}
	// On every interface it asks loopback.
	_, port, _ := net.SplitHostPort(addr)
	if _, errOut, code := health("WISP_LISTEN=0.0.0.0:"+port, "WISP_DATA_DIR="+dir); code != 0 {
		t.Errorf("WISP_LISTEN=0.0.0.0: exit %d %s", code, errOut)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{"WISP_LISTEN=" + free, "WISP_DATA_DIR=" + dir}, "wisp: unhealthy: no relay answers at http://" + free + "/"},
		{[]string{"WISP_LISTEN=" + addr, "WISP_DATA_DIR=" + t.TempDir()}, "answers, but no wisp serve holds the data directory"},
		{[]string{"WISP_LISTEN=127.0.0.1:0", "WISP_DATA_DIR=" + dir}, "picks a free port at start"},
	} {
		if _, errOut, code := health(tt.env...); code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d %q, want 1 and %q", tt.env, code, errOut, tt.want)
		}
	}
	// Something else than a relay on the port.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"))
			c.Close()
		}
	}()
	if _, errOut, code := health("WISP_LISTEN="+ln.Addr().String(), "WISP_DATA_DIR="+dir); code != 1 || !strings.Contains(errOut, "not a NIP-11 document") {
		t.Errorf("not a relay: exit %d %q", code, errOut)
	}
	// Nothing was left in the data directory.
	if probes, _ := filepath.Glob(filepath.Join(dir, ".wisp-health-*")); len(probes) > 0 {
		t.Errorf("health left %v", probes)
	}
}

// wisp health as the image's user on a store it cannot write: unhealthy,
// saying why.
func TestHealthStoreNotWritable(t *testing.T) {
	addr, dir, _ := startWisp(t)
	bin := filepath.Join(openDir(t), "wisp")
	if err := os.Rename(buildWisp(t), bin); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755) // readable, not writable, by another user
	os.Chmod(filepath.Join(dir, lockFile), 0o644)
	code, stderr, uid := asOtherUser(t, bin, dir, []string{"WISP_LISTEN=" + addr, "WISP_DATA_DIR=" + dir}, "health")
	if code != 1 || !strings.Contains(stderr, "unhealthy: the store cannot be written: the data directory "+dir+" is not writable by uid "+strconv.Itoa(uid)) {
		t.Errorf("health on a store it cannot write: exit %d %s", code, stderr)
	}
}

// The Compose files give wisp only variables it reads (a misspelt one
// would be ignored without a word), and the scale-out file gives every
// wisp node the same database, URL and key.
func TestComposeFilesSetKnownVariables(t *testing.T) {
	known := configDefaults(t)
	// Variables of Compose and Caddy themselves, not wisp's.
	own := map[string]bool{"WISP_DOMAIN": true, "WISP_VERSION": true, "WISP_DB_PASSWORD": true, "WISP_UPSTREAM": true}
	setting := regexp.MustCompile(`(?m)^\s+(WISP_[A-Z0-9_]+):`)
	for _, name := range []string{"docker-compose.yml", "scale-out.yml"} {
		b, err := os.ReadFile(filepath.Join("../../docs/deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range setting.FindAllStringSubmatch(string(b), -1) {
			if _, ok := known[m[1]]; !ok && !own[m[1]] {
				t.Errorf("%s sets %s, which wisp does not read", name, m[1])
			}
		}
	}
	b, err := os.ReadFile("../../docs/deploy/scale-out.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"WISP_DATABASE_URL: postgres://", "WISP_RELAY_SECRET_KEY:", "WISP_PUBLIC_URL:", "<<: *wisp", "./Caddyfile.scale-out:/etc/caddy/Caddyfile"} {
		if !strings.Contains(s, want) {
			t.Errorf("scale-out.yml has no %q", want)
		}
	}
	if n := strings.Count(s, "<<: *wisp"); n < 2 {
		t.Errorf("scale-out.yml runs %d wisp nodes from the shared block, want at least 2", n)
	}
	caddy, err := os.ReadFile("../../docs/deploy/Caddyfile.scale-out")
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"wisp-a:4869", "wisp-b:4869"} {
		if !strings.Contains(string(caddy), node) || !strings.Contains(s, strings.TrimSuffix(node, ":4869")+":") {
			t.Errorf("%s is not both a service of scale-out.yml and an upstream of Caddyfile.scale-out", node)
		}
	}
}
