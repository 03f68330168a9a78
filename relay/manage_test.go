package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// startManagedRelay runs a relay on path with a policy over live lists and
// the NIP-86 API for admin.
func startManagedRelay(t *testing.T, path string, admin key, tune ...func(*relay.Config)) (*testRelay, func()) {
	t.Helper()
	return startRelayAt(t, path, func(store *sqlite.Store, cfg *relay.Config) {
		lists := policy.NewLists(nil, nil, nil, nil)
		a := policy.NewAdmin(lists, store, store, nil)
		if err := a.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		p, err := policy.New(policy.Config{}, lists)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Policy, cfg.Manager, cfg.AdminPubkeys = p, a, []string{admin.pk}
		for _, f := range tune {
			f(cfg)
		}
	})
}

// rpcCall is one NIP-86 request, signed by k unless k is nil; tweak may
// spoil the NIP-98 event before it is signed.
type rpcCall struct {
	method string
	params []any
	tweak  func(ev *nostr.Event)
}

type rpcResult struct {
	status int
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
	header string          // the Authorization header sent
}

func (tr *testRelay) nip98Header(t *testing.T, k *key, body []byte, tweak func(*nostr.Event)) string {
	t.Helper()
	sum := sha256.Sum256(body)
	ev := &nostr.Event{
		Kind:      27235,
		CreatedAt: nostr.Timestamp(now()),
		Tags: nostr.Tags{
			{"u", tr.srv.URL + "/"},
			{"method", "POST"},
			{"payload", hex.EncodeToString(sum[:])},
			// Two identical calls in the same second would make the same
			// event, which the relay takes for a replay.
			{"r", nostr.GeneratePrivateKey()[:16]},
		},
	}
	if tweak != nil {
		tweak(ev)
	}
	if err := ev.Sign(k.sk); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	return "Nostr " + base64.StdEncoding.EncodeToString(b)
}

func (tr *testRelay) rpc(t *testing.T, k *key, call rpcCall) rpcResult {
	t.Helper()
	params := call.params
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"method": call.method, "params": params})
	auth := ""
	if k != nil {
		auth = tr.nip98Header(t, k, body, call.tweak)
	}
	return tr.rpcRaw(t, body, auth)
}

func (tr *testRelay) rpcRaw(t *testing.T, body []byte, auth string) rpcResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tr.srv.URL+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/nostr+json+rpc")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	res := rpcResult{status: resp.StatusCode, header: auth}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("response %q: %v", b, err)
	}
	return res
}

// must runs a call that has to succeed with result true.
func (tr *testRelay) must(t *testing.T, admin key, method string, params ...any) {
	t.Helper()
	res := tr.rpc(t, &admin, rpcCall{method: method, params: params})
	if res.status != http.StatusOK || res.Error != "" || string(res.Result) != "true" {
		t.Fatalf("%s %v: HTTP %d result %s error %q", method, params, res.status, res.Result, res.Error)
	}
}

func TestManagementAuthorization(t *testing.T) {
	admin, other := newKey(t), newKey(t)
	tr, _ := startManagedRelay(t, filepath.Join(t.TempDir(), "wisp.db"), admin)

	res := tr.rpc(t, &admin, rpcCall{method: "supportedmethods"})
	var methods []string
	if err := json.Unmarshal(res.Result, &methods); res.status != 200 || err != nil {
		t.Fatalf("supportedmethods: HTTP %d %s %v", res.status, res.Result, err)
	}
	for _, m := range []string{"supportedmethods", "banpubkey", "listbannedpubkeys", "allowpubkey", "listallowedpubkeys",
		"banevent", "allowevent", "listbannedevents", "allowkind", "disallowkind", "listallowedkinds",
		"blockip", "unblockip", "listblockedips", "changerelayname", "changerelaydescription"} {
		if !slices.Contains(methods, m) {
			t.Errorf("supportedmethods lacks %s", m)
		}
	}

	// Replaying a header that worked is refused.
	if again := tr.rpcRaw(t, []byte(`{"method":"supportedmethods","params":[]}`), res.header); again.status != http.StatusUnauthorized {
		t.Errorf("replayed header: HTTP %d, want 401", again.status)
	}
	unauthorized := map[string]rpcCall{
		"wrong payload": {method: "supportedmethods", tweak: func(ev *nostr.Event) { ev.Tags[2][1] = strings.Repeat("0", 64) }},
		"no payload":    {method: "supportedmethods", tweak: func(ev *nostr.Event) { ev.Tags = ev.Tags[:2] }},
		"other url":     {method: "supportedmethods", tweak: func(ev *nostr.Event) { ev.Tags[0][1] = "https://relay.example.com/" }},
		"other path":    {method: "supportedmethods", tweak: func(ev *nostr.Event) { ev.Tags[0][1] += "admin" }},
		"GET method":    {method: "supportedmethods", tweak: func(ev *nostr.Event) { ev.Tags[1][1] = "GET" }},
		"too old":       {method: "supportedmethods", tweak: func(ev *nostr.Event) { ev.CreatedAt -= 120 }},
		"wrong kind":    {method: "supportedmethods", tweak: func(ev *nostr.Event) { ev.Kind = 22242 }},
	}
	for name, call := range unauthorized {
		if res := tr.rpc(t, &admin, call); res.status != http.StatusUnauthorized || res.Error == "" {
			t.Errorf("%s: HTTP %d %+v, want 401", name, res.status, res)
		}
	}
	if res := tr.rpc(t, nil, rpcCall{method: "supportedmethods"}); res.status != http.StatusUnauthorized {
		t.Errorf("no header: HTTP %d, want 401", res.status)
	}
	// A forged signature.
	body := []byte(`{"method":"banpubkey","params":["` + other.pk + `"]}`)
	h := tr.nip98Header(t, &admin, body, nil)
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Nostr "))
	var ev nostr.Event
	_ = json.Unmarshal(raw, &ev)
	ev.Sig = strings.Repeat("1", 128)
	forged, _ := json.Marshal(ev)
	if res := tr.rpcRaw(t, body, "Nostr "+base64.StdEncoding.EncodeToString(forged)); res.status != http.StatusUnauthorized {
		t.Errorf("forged signature: HTTP %d, want 401", res.status)
	}
	// A valid header from someone who is not an admin.
	if res := tr.rpc(t, &other, rpcCall{method: "banpubkey", params: []any{admin.pk}}); res.status != http.StatusForbidden {
		t.Errorf("non-admin: HTTP %d, want 403", res.status)
	}
	// Nothing of that took effect: the admin still publishes.
	dial(t, tr.url).mustPublish(admin.sign(t, 1, now(), "still here"))

	// Bad calls are answered with an error, not a failure.
	for _, call := range []rpcCall{{method: "nosuchmethod"}, {method: "banpubkey", params: []any{"xyz"}}, {method: "allowkind", params: []any{"one"}}, {method: "blockip", params: []any{"not an ip"}}} {
		if res := tr.rpc(t, &admin, call); res.status != http.StatusOK || res.Error == "" {
			t.Errorf("%s %v: HTTP %d %+v, want 200 with an error", call.method, call.params, res.status, res)
		}
	}
}

func TestManagementBansAndAllows(t *testing.T) {
	admin, spammer, alice := newKey(t), newKey(t), newKey(t)
	tr, _ := startManagedRelay(t, filepath.Join(t.TempDir(), "wisp.db"), admin)
	c := dial(t, tr.url)
	spam := []*nostr.Event{spammer.sign(t, 1, now(), "spam 1"), spammer.sign(t, 1, now(), "spam 2")}
	for _, ev := range spam {
		c.mustPublish(ev)
	}
	good := alice.sign(t, 1, now(), "good")
	bad := alice.sign(t, 1, now(), "regrettable")
	c.mustPublish(good)
	c.mustPublish(bad)

	// banpubkey removes what is stored and refuses what comes.
	tr.must(t, admin, "banpubkey", spammer.pk, "spam")
	if got := c.query("q", nostr.Filter{Authors: []string{spammer.pk}}); len(got) != 0 {
		t.Fatalf("banned pubkey's events still served: %v", ids(got))
	}
	wantRefused(t, c.publish(spammer.sign(t, 1, now(), "spam 3")), "blocked")
	wantRefused(t, c.publish(spam[0]), "blocked")
	res := tr.rpc(t, &admin, rpcCall{method: "listbannedpubkeys"})
	if want := `[{"pubkey":"` + spammer.pk + `","reason":"spam"}]`; string(res.Result) != want {
		t.Fatalf("listbannedpubkeys %s, want %s", res.Result, want)
	}

	// banevent likewise, for one event.
	tr.must(t, admin, "banevent", bad.ID, "offensive")
	if got := c.query("q", nostr.Filter{Authors: []string{alice.pk}}); len(got) != 1 || got[0].ID != good.ID {
		t.Fatalf("after banevent: %v", ids(got))
	}
	wantRefused(t, c.publish(bad), "blocked")
	if res := tr.rpc(t, &admin, rpcCall{method: "listbannedevents"}); !strings.Contains(string(res.Result), bad.ID) {
		t.Fatalf("listbannedevents %s", res.Result)
	}
	// allowevent lifts the ban.
	tr.must(t, admin, "allowevent", bad.ID)
	c.mustPublish(bad)
	if res := tr.rpc(t, &admin, rpcCall{method: "listbannedevents"}); string(res.Result) != "[]" {
		t.Fatalf("listbannedevents after allowevent: %s %+v", res.Result, res)
	}

	// allowpubkey makes an allow list: others must now be members.
	tr.must(t, admin, "allowpubkey", alice.pk, "friend")
	c.mustPublish(alice.sign(t, 1, now(), "member"))
	sc := dial(t, tr.url)
	sc.send("EVENT", newKey(t).sign(t, 1, now(), "stranger"))
	sc.expectChallenge()
	wantRefused(t, sc.expectOK(), "auth-required")
	if res := tr.rpc(t, &admin, rpcCall{method: "listallowedpubkeys"}); !strings.Contains(string(res.Result), alice.pk) {
		t.Fatalf("listallowedpubkeys %s", res.Result)
	}
	// Banning an allowed pubkey takes it off the allow list; unbanning does
	// not put it back.
	tr.must(t, admin, "banpubkey", alice.pk)
	tr.must(t, admin, "unbanpubkey", alice.pk)
	if res := tr.rpc(t, &admin, rpcCall{method: "listallowedpubkeys"}); string(res.Result) != "[]" {
		t.Fatalf("listallowedpubkeys after ban: %s", res.Result)
	}
	tr.must(t, admin, "unbanpubkey", spammer.pk)
	c.mustPublish(spammer.sign(t, 1, now(), "reformed"))
}

func TestManagementKindsAndIPs(t *testing.T) {
	admin := newKey(t)
	tr, _ := startManagedRelay(t, filepath.Join(t.TempDir(), "wisp.db"), admin)
	k := newKey(t)
	c := dialFrom(t, tr.url, "192.0.2.5")

	tr.must(t, admin, "allowkind", 1)
	tr.must(t, admin, "allowkind", 0)
	c.mustPublish(k.sign(t, 1, now(), "note"))
	wantRefused(t, c.publish(k.sign(t, 7, now(), "+")), "blocked")
	tr.must(t, admin, "disallowkind", 1)
	wantRefused(t, c.publish(k.sign(t, 1, now(), "note 2")), "blocked")
	if res := tr.rpc(t, &admin, rpcCall{method: "listallowedkinds"}); string(res.Result) != "[0]" {
		t.Fatalf("listallowedkinds %s", res.Result)
	}
	if res := tr.rpc(t, &admin, rpcCall{method: "listdisallowedkinds"}); string(res.Result) != "[1]" {
		t.Fatalf("listdisallowedkinds %s", res.Result)
	}

	// blockip: open connections from it are refused at once, new ones too.
	tr.must(t, admin, "blockip", "192.0.2.5", "abuse")
	wantRefused(t, c.publish(k.sign(t, 0, now(), "{}")), "blocked")
	c.send("REQ", "s", nostr.Filter{})
	if why := c.expectClosed("s"); !strings.HasPrefix(why, "blocked:") {
		t.Fatalf("CLOSED %q", why)
	}
	if _, resp, err := tryDial(t, tr.url, "192.0.2.5"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("blocked IP connects: %v %v", err, resp)
	}
	dialFrom(t, tr.url, "192.0.2.6").mustPublish(k.sign(t, 0, now(), "{}"))
	if res := tr.rpc(t, &admin, rpcCall{method: "listblockedips"}); string(res.Result) != `[{"ip":"192.0.2.5","reason":"abuse"}]` {
		t.Fatalf("listblockedips %s", res.Result)
	}
	tr.must(t, admin, "unblockip", "192.0.2.5")
	dialFrom(t, tr.url, "192.0.2.5").mustPublish(k.sign(t, 0, now()+1, "{}"))
}

// Changes are stored: they survive a restart, and the relay's name and
// description change in NIP-11 at once.
func TestManagementSurvivesRestart(t *testing.T) {
	admin, banned := newKey(t), newKey(t)
	path := filepath.Join(t.TempDir(), "wisp.db")
	tr, stop := startManagedRelay(t, path, admin)
	tr.must(t, admin, "changerelayname", "Renamed")
	tr.must(t, admin, "changerelaydescription", "now with moderation")
	tr.must(t, admin, "banpubkey", banned.pk, "gone")
	tr.must(t, admin, "allowkind", 1)
	info := nip11(t, tr)
	if info.Name != "Renamed" || info.Description != "now with moderation" || !slices.Contains(info.NIPs, 86) {
		t.Fatalf("NIP-11 after changes: %+v", info)
	}
	stop()

	tr2, _ := startManagedRelay(t, path, admin)
	if info := nip11(t, tr2); info.Name != "Renamed" || info.Description != "now with moderation" {
		t.Fatalf("NIP-11 after restart: %+v", info)
	}
	if res := tr2.rpc(t, &admin, rpcCall{method: "listbannedpubkeys"}); !strings.Contains(string(res.Result), banned.pk) {
		t.Fatalf("bans lost in restart: %s", res.Result)
	}
	c := dial(t, tr2.url)
	wantRefused(t, c.publish(banned.sign(t, 1, now(), "back?")), "blocked")
	wantRefused(t, c.publish(admin.sign(t, 7, now(), "+")), "blocked")
	c.mustPublish(admin.sign(t, 1, now(), "kind 1 still allowed"))
}

type nip11Doc struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	NIPs        []int  `json:"supported_nips"`
	Contact     string `json:"contact"`
	Limitation  struct {
		MaxMessageLength int `json:"max_message_length"`
		MaxLimit         int `json:"max_limit"`
		MaxContentLength int `json:"max_content_length"`
	} `json:"limitation"`
}

func nip11(t *testing.T, tr *testRelay) nip11Doc {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tr.srv.URL+"/", nil)
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
