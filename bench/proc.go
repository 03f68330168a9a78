package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. The kernel fixes
// it at 100 for user space on every architecture Linux exports /proc on
// (USER_HZ), whatever its internal tick rate; reading sysconf would need cgo.
const userHZ = 100

// procSample is what /proc says about the relay process at one moment.
type procSample struct {
	cpuTicks   int64 // user+system, in 1/userHZ s
	writeBytes int64 // bytes the process caused to be written to storage
	rssKiB     int64
}

// Usage is what the relay process spent during a phase (with --pid).
type Usage struct {
	CPUSeconds     float64 `json:"cpu_seconds"`
	DiskWriteBytes int64   `json:"disk_write_bytes"`
}

func (a procSample) usageSince(b procSample) *Usage {
	return &Usage{
		CPUSeconds:     float64(a.cpuTicks-b.cpuTicks) / userHZ,
		DiskWriteBytes: a.writeBytes - b.writeBytes,
	}
}

// readProc samples the process pid from /proc (Linux only).
func readProc(pid int) (procSample, error) {
	var s procSample
	dir := "/proc/" + strconv.Itoa(pid)

	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, fmt.Errorf("read relay cpu time: %w", err)
	}
	if s.cpuTicks, err = parseStatCPU(stat); err != nil {
		return s, fmt.Errorf("relay %s/stat: %w", dir, err)
	}

	ioStats, err := os.ReadFile(dir + "/io")
	if err != nil {
		return s, fmt.Errorf("read relay disk writes: %w", err)
	}
	if s.writeBytes, err = procField(ioStats, "write_bytes:"); err != nil {
		return s, fmt.Errorf("relay %s/io: %w", dir, err)
	}

	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("read relay memory: %w", err)
	}
	if bytes.Contains(status, []byte("\nState:\tZ")) {
		// A zombie has no memory lines: say what happened instead.
		return s, fmt.Errorf("relay process %d has exited", pid)
	}
	if s.rssKiB, err = procField(status, "VmRSS:"); err != nil {
		return s, fmt.Errorf("relay %s/status: %w", dir, err)
	}
	return s, nil
}

// parseStatCPU returns utime+stime from the contents of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func parseStatCPU(stat []byte) (int64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	f := strings.Fields(string(stat[end+1:]))
	// After the name come field 3 (state) onwards: utime is field 14 and
	// stime field 15, that is f[11] and f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("only %d fields", len(f)+2)
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// procField returns the first number after name in a "name: value" file.
func procField(data []byte, name string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		v, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %w", name, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("no %s line", name)
}

// openFileLimit reads the soft "Max open files" limit of process pid.
func openFileLimit(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, fmt.Errorf("read relay limits: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Max open files")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		if fields[0] == "unlimited" {
			return -1, nil
		}
		v, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("max open files: %w", err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("no max open files line in relay limits")
}

// parseMachineBusy returns the busy time of all CPUs from the contents of
// /proc/stat: user, nice, system, irq, softirq and steal of its "cpu" line
// (idle and iowait are not busy; guest time is already in user).
func parseMachineBusy(stat []byte) (int64, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat field %d: %w", i, err)
		}
		busy += v
	}
	return busy, nil
}

// listenerPID finds the process listening on the TCP port of a ws:// URL on
// this machine, from /proc/net/tcp{,6} and the processes' descriptors (so a
// comparison needs no --pid per relay). It finds only processes this user
// may inspect, and fails where /proc is missing.
func listenerPID(wsURL string) (int, error) {
	hp, err := hostPort(wsURL)
	if err != nil {
		return 0, err
	}
	_, portStr, _ := strings.Cut(hp[strings.LastIndexByte(hp, ']')+1:], ":")
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port of %s: %w", wsURL, err)
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, ino := range listeningInodes(data, uint16(port)) {
			inodes["socket:["+ino+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("nothing listens on port %d", port)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir("/proc/" + p.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); err == nil && inodes[link] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process of this user holds the socket listening on port %d", port)
}

// listeningInodes returns the inodes of the sockets listening (state 0A)
// on port in the contents of /proc/net/tcp or tcp6.
func listeningInodes(table []byte, port uint16) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Scan() // the header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && uint16(p) == port {
			out = append(out, f[9])
		}
	}
	return out
}
