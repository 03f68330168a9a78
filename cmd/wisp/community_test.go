package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

type nip11Doc struct {
	NIPs  []int           `json:"supported_nips"`
	Self  string          `json:"self"`
	NIP29 map[string]bool `json:"nip29"`
}

func fetchNIP11(t *testing.T, addr string) nip11Doc {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc nip11Doc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func frontPage(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// With WISP_GROUPS=on, wisp serve makes the relay's key once, keeps it
// (0600) in the data directory, names it in NIP-11 and on the front page,
// and the groups it holds are there after a restart.
func TestGroupsServe(t *testing.T) {
	dir := t.TempDir()
	addr, _, stop := startWispIn(t, dir, "WISP_GROUPS=on", "WISP_GROUPS_MAX=7")
	fi, err := os.Stat(filepath.Join(dir, relayKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("relay key file: %v %v", fi, err)
	}
	doc := fetchNIP11(t, addr)
	if !slices.Contains(doc.NIPs, 29) || !nostr.IsValid32ByteHex(doc.Self) || !doc.NIP29["subgroups"] {
		t.Fatalf("NIP-11 %+v", doc)
	}
	if page := frontPage(t, addr); !strings.Contains(page, doc.Self) || !strings.Contains(page, "at most 7, each with at most 1000 members") {
		t.Fatalf("front page lacks the relay's key or the groups' limits:\n%s", page)
	}
	sk := nostr.GeneratePrivateKey()
	c := dialWisp(t, addr)
	if !c.publish(signed(t, sk, 9007, nostr.Now().Time().Unix(), "", nostr.Tag{"h", "book-club"})) {
		t.Fatal("create-group refused")
	}
	stop()

	addr, _, _ = startWispIn(t, dir, "WISP_GROUPS=on")
	if again := fetchNIP11(t, addr); again.Self != doc.Self {
		t.Fatalf("self changed across restarts: %s, then %s", doc.Self, again.Self)
	}
	c = dialWisp(t, addr)
	if !c.publish(signed(t, sk, 9, nostr.Now().Time().Unix(), "hello", nostr.Tag{"h", "book-club"})) {
		t.Fatal("message to the group refused after a restart")
	}
}

// Groups off: no NIP-29, no key made. WISP_RELAY_SECRET_KEY names the key.
func TestRelayKeySettings(t *testing.T) {
	addr, dir, _ := startWisp(t)
	if doc := fetchNIP11(t, addr); slices.Contains(doc.NIPs, 29) || doc.Self != "" {
		t.Fatalf("groups off: NIP-11 %+v", doc)
	}
	if _, err := os.Stat(filepath.Join(dir, relayKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a key was made with groups off: %v", err)
	}
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	addr, dir, _ = startWisp(t, "WISP_GROUPS=on", "WISP_RELAY_SECRET_KEY="+sk)
	if doc := fetchNIP11(t, addr); doc.Self != pk {
		t.Fatalf("self %q, want the configured key's %q", doc.Self, pk)
	}
	if _, err := os.Stat(filepath.Join(dir, relayKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a key file was made beside the configured key: %v", err)
	}
	if _, err := loadConfig([]string{"WISP_RELAY_SECRET_KEY=nope"}); err == nil || strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad key: %v (the value must not be echoed)", err)
	}
	for _, kv := range []string{"WISP_GROUPS=yes", "WISP_GROUPS_MAX=0", "WISP_GROUP_MAX_MEMBERS=-1", "WISP_GROUP_EVENT_MAX_AGE=-1s", "WISP_GROUP_CREATORS=bob"} {
		if _, err := loadConfig([]string{kv}); err == nil {
			t.Errorf("%s accepted", kv)
		}
	}
}
