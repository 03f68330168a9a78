package main

import (
	"net"
	"strings"
)

// sdNotify sends state to systemd's notification socket (sd_notify(3))
// when wisp runs under a unit with Type=notify: READY=1 once it listens,
// RELOADING=1 around a reload, MAINPID= when an upgrade hands the service
// to a new process, STOPPING=1. Without NOTIFY_SOCKET it does nothing; a
// failure is only a lost hint to systemd, so it is ignored.
func sdNotify(environ []string, state string) {
	path := lookupEnv(environ, "NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if strings.HasPrefix(path, "@") { // an abstract socket
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state)) //nolint:errcheck // see above
}

// lookupEnv is the value of key in environ (the last one, as a map of it
// would hold).
func lookupEnv(environ []string, key string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
