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
  wisp health       exit 0 if the relay answers and its store is writable
  wisp version      print the version (also wisp --version)
  wisp stats        print event counts by kind, database and WAL size
  wisp backup <file>
                    copy the database to file, while the relay runs
  wisp import [--no-verify] [file]
                    store events from JSON lines (a file or standard input)
  wisp export [--filter <json>] [--since T] [--until T] [--out file]
                    write stored events as JSON lines
  wisp sync <relay-url> [--dir down|up|both] [--filter <json>]
                    reconcile with another relay (NIP-77, or REQ paging)
  wisp mirror <config>
                    run the live mirroring streams of a config file alone
  wisp scan [--count] <json filter>
                    print stored events matching a filter as JSON lines
  wisp delete --filter <json filter> [--age AGE] [--yes]
                    count (dry run), or with --yes delete, matching events
  wisp bench <url>  measure a relay over websockets
  wisp invite [--count N] [--ttl D]
                    mint NIP-43 invite codes (WISP_MEMBERSHIP=on)
  wisp <command> --help
                    the help of one command

Settings come from WISP_ environment variables (or the file
WISP_CONFIG_FILE names), for example
  WISP_LISTEN    address to listen on (default 127.0.0.1:4869)
  WISP_DATA_DIR  directory of the database (default ./data)
config.example.env and README.md list every variable with its default.
`

const serveUsage = `Usage: wisp [serve]

Runs the relay until SIGINT or SIGTERM, then shuts it down cleanly (the
events already accepted are stored and answered, the database is
checkpointed). It listens on WISP_LISTEN (default 127.0.0.1:4869) and
keeps its database in WISP_DATA_DIR (default ./data), which one wisp serve
at a time may use (it holds DATA_DIR/wisp.lock); wisp import, export, sync,
mirror, scan, delete, backup and stats may run beside it.

SIGHUP reloads the configuration (the environment and WISP_CONFIG_FILE,
read again) and applies what can change live, keeping every connection;
a bad configuration is refused whole and logged. SIGUSR2 upgrades: the
binary now at this one's path takes over the listening socket, and this
process drains and exits without refusing a connection.

Every setting is a WISP_ variable, from the environment or from the env
file WISP_CONFIG_FILE names (which wins): config.example.env and
README.md list them all, with their defaults.

  WISP_LISTEN=0.0.0.0:4869 WISP_PUBLIC_URL=wss://relay.example.com wisp serve
`

const versionUsage = `Usage: wisp version  (or wisp --version)

Prints the version, the signature verifier compiled in (btcec, or
libsecp256k1 with the libsecp256k1 build tag) and the Go version.
`

const statsUsage = `Usage: wisp stats

Prints the database's schema version, file sizes (database and
write-ahead log), event counts in total and by kind, the range of
created_at and the search kinds. It reads DATA_DIR/wisp.db (from
WISP_DATA_DIR), or PostgreSQL at WISP_DATABASE_URL (its size is
pg_database_size), through a read-only connection, so the relay may keep
running.
`

// simpleUsage is the help of the commands that take no arguments.
var simpleUsage = map[string]string{"serve": serveUsage, "version": versionUsage, "stats": statsUsage, "help": usage}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second
	// one kills a shutdown that takes too long.
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(report(err, os.Stderr))
}

// usageError is a mistake on the command line: it exits 2, and report
// points to the help of the command it was made with (cmd, "" for wisp
// itself) rather than printing all of it.
type usageError struct{ cmd, msg string }

func (e *usageError) Error() string { return e.msg }

// newFlags is the flag set of a command; errors and help are printed by
// report and the command, once.
func newFlags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args, flags and other arguments in any order (as in
// wisp scan '{...}' --count), and returns the other arguments. On
// --help it returns nil and no error; a bad flag is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	rest := []string{}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil
			}
			return nil, &usageError{fs.Name(), fs.Name() + ": " + err.Error()}
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// helpOr returns err, or prints help when parseFlags found --help.
func helpOr(err error, stdout io.Writer, help string) error {
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(stdout, help)
	return err
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// report prints err for a person and returns the process exit code.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "wisp: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		help := "wisp --help"
		if ue.cmd != "" {
			help = "wisp " + ue.cmd + " --help"
		}
		fmt.Fprintf(stderr, "Run '%s' for usage.\n", help)
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
		return &usageError{"", err.Error()}
	}
	if *showVersion {
		return printVersion(stdout)
	}

	cmd, rest := "serve", fs.Args()
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	if help, ok := simpleUsage[cmd]; ok && len(rest) > 0 { // the others parse their own arguments
		if len(rest) == 1 && isHelp(rest[0]) {
			_, err := fmt.Fprint(stdout, help)
			return err
		}
		return &usageError{cmd, fmt.Sprintf("%s takes no arguments, got %q", cmd, rest)}
	}
	switch cmd {
	case "serve":
		cfg, overridden, err := loadConfigNoting(environ)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, serveArgs{args: args, environ: environ, overridden: overridden}, stderr, ready)
	case "version":
		return printVersion(stdout)
	case "health":
		return runHealth(ctx, rest, environ, stdout)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "scan":
		return runScan(ctx, rest, environ, stdout)
	case "delete":
		return runDelete(ctx, rest, environ, stdout)
	case "backup":
		return runBackup(ctx, rest, environ, stdout, stderr)
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
		return &usageError{"", fmt.Sprintf("unknown command %q", cmd)}
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
