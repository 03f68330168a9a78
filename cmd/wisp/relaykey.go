package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// The relay's own key signs what the relay publishes itself: NIP-29 group
// state and NIP-43 member lists. Its pubkey is NIP-11's self, which
// clients check those events against, so it must not change: it comes
// from WISP_RELAY_SECRET_KEY, or else from DATA_DIR/relay.key, made there
// once (mode 0600) when groups or membership first need it.

// relayKeyFile is where a generated key is kept, in the data directory.
const relayKeyFile = "relay.key"

// parseSecretKey reads a secret key given as 64 hex digits.
func parseSecretKey(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !nostr.IsValid32ByteHex(s) {
		return "", errors.New("want 64 hex characters")
	}
	if _, err := nostr.GetPublicKey(s); err != nil {
		return "", errors.New("not a valid secp256k1 secret key")
	}
	return s, nil
}

// relayKey returns the relay's secret and public key: the configured one,
// else the one kept in the data directory, which is made when create is
// set and there is none. sk is "" when there is no key and none was made.
func (c Config) relayKey(create bool) (sk, pk string, err error) {
	if c.RelaySecretKey != "" {
		sk, _ = parseSecretKey(c.RelaySecretKey) // validated
	} else {
		path := filepath.Join(c.DataDir, relayKeyFile)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			if sk, err = parseSecretKey(string(b)); err != nil {
				return "", "", fmt.Errorf("relay key %s: %w", path, err)
			}
		case errors.Is(err, fs.ErrNotExist) && create:
			if sk, err = makeRelayKey(path); err != nil {
				return "", "", err
			}
		case errors.Is(err, fs.ErrNotExist):
			return "", "", nil
		default:
			return "", "", fmt.Errorf("read relay key: %w", err)
		}
	}
	pk, err = nostr.GetPublicKey(sk)
	if err != nil {
		return "", "", fmt.Errorf("relay key: %w", err)
	}
	return sk, pk, nil
}

// makeRelayKey generates a key and writes it to path, readable by the
// owner only; an existing file is never overwritten.
func makeRelayKey(path string) (string, error) {
	sk := nostr.GeneratePrivateKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create relay key: %w", err)
	}
	_, werr := f.WriteString(sk + "\n")
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write relay key: %w", err)
	}
	return sk, nil
}
