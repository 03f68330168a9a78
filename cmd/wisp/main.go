// Command wisp runs the wisp Nostr relay. It is the one place where the
// concrete pieces (the SQLite store, the relay, the HTTP server) are wired
// together; all settings come from WISP_ environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// version is wisp's version, set at build time with
// -ldflags "-X main.version=1.2.3".
var version = "0.1.0-dev"

const usage = `wisp is a Nostr relay that stores events in SQLite.

Usage:
  wisp [serve]      run the relay (the default)
  wisp version      print the version
  wisp bench <url>  measure a relay over websockets (wisp bench --help)
  wisp scan <json filter>
                    print stored events matching a filter as JSON lines
  wisp delete --filter <json filter> [--yes]
                    count (dry run), or with --yes delete, matching events
  wisp backup <file>
                    copy the database to file, while the relay runs
  wisp stats        print event counts by kind, database and WAL size
  wisp export [--filter <json>] [--since T] [--until T] [--out file]
                    write stored events as JSON lines
  wisp import [--no-verify] [file]
                    store events from JSON lines (a file or standard input)
  wisp sync <relay-url> [--dir down|up|both] [--filter <json>]
                    reconcile with another relay (NIP-77, or REQ paging)
  wisp mirror <config>
                    run the live mirroring streams of a config file alone
  wisp invite [--count N] [--ttl D]
                    mint NIP-43 invite codes (WISP_MEMBERSHIP=on)
  wisp --version    print the version
  wisp --help       show this help

Settings come from WISP_ environment variables, for example
  WISP_LISTEN    address to listen on (default 127.0.0.1:4869)
  WISP_DATA_DIR  directory of the database (default ./data)
config.example.env and README.md list every variable with its default.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second
	// one kills a shutdown that takes too long.
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(report(err, os.Stderr))
}

// usageError is a mistake on the command line: it exits 2 and shows usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// report prints err for a person and returns the process exit code.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "wisp: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprint(stderr, "\n"+usage)
		return 2
	}
	return 1
}

// run is wisp's whole command line. environ holds KEY=VALUE entries as
// os.Environ returns them; ready, if not nil, is called with the bound
// address once the relay accepts connections. run returns when ctx is done
// and the relay has shut down, or on error.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer, ready func(addr net.Addr)) error {
	fs := flag.NewFlagSet("wisp", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage and errors are printed by us, once
	showVersion := fs.Bool("version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err = fmt.Fprint(stdout, usage)
			return err
		}
		return &usageError{err.Error()}
	}
	if *showVersion {
		return printVersion(stdout)
	}

	cmd, rest := "serve", fs.Args()
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 && cmd != "bench" && cmd != "scan" && cmd != "delete" && cmd != "backup" &&
		cmd != "export" && cmd != "import" && cmd != "sync" && cmd != "mirror" && cmd != "invite" { // these parse their own arguments
		if rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help" {
			_, err := fmt.Fprint(stdout, usage)
			return err
		}
		return &usageError{fmt.Sprintf("%s takes no arguments, got %q", cmd, rest)}
	}
	switch cmd {
	case "serve":
		cfg, err := loadConfig(environ)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stderr, ready)
	case "version":
		return printVersion(stdout)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "scan":
		return runScan(ctx, rest, environ, stdout)
	case "delete":
		return runDelete(ctx, rest, environ, stdout)
	case "backup":
		return runBackup(ctx, rest, environ, stdout)
	case "stats":
		return runStats(ctx, environ, stdout)
	case "export":
		return runExport(ctx, rest, environ, stdout, stderr)
	case "import":
		return runImport(ctx, rest, environ, stdin, stdout, stderr)
	case "sync":
		return runSync(ctx, rest, environ, stdout, stderr)
	case "mirror":
		return runMirror(ctx, rest, environ, stdout, stderr)
	case "invite":
		return runInvite(ctx, rest, environ, stdout, stderr)
	case "help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	default:
		return &usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// versionString is what --version prints and NIP-11 describes.
func versionString() string {
	return fmt.Sprintf("wisp %s (%s, %s)", version, verifier, runtime.Version())
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintln(w, versionString())
	return err
}
