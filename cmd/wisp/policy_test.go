package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

func TestPolicyConfigValidation(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "plugin.sh")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	tests := []struct {
		env  string
		want string
	}{
		{"WISP_AUTH=maybe", `WISP_AUTH="maybe": want open, write or all`},
		{"WISP_ALLOW_PUBKEYS=abc", "WISP_ALLOW_PUBKEYS"},
		{"WISP_DENY_PUBKEYS=npub1xyz", "WISP_DENY_PUBKEYS"},
		{"WISP_ADMIN_PUBKEYS=" + strings.Repeat("g", 64), "WISP_ADMIN_PUBKEYS"},
		{"WISP_ALLOW_KINDS=1,x", "WISP_ALLOW_KINDS"},
		{"WISP_DENY_KINDS=9-3", "WISP_DENY_KINDS"},
		{"WISP_MIN_POW=-1", "WISP_MIN_POW"},
		{"WISP_EVENT_RATE_IP=30", `WISP_EVENT_RATE_IP="30": want N/period`},
		{"WISP_EVENT_RATE_PUBKEY=a/1m", "WISP_EVENT_RATE_PUBKEY"},
		{"WISP_REQ_RATE_IP=5/0s", "WISP_REQ_RATE_IP"},
		{"WISP_CONN_RATE_IP=5/soon", "WISP_CONN_RATE_IP"},
		{"WISP_MAX_CONNS_PER_IP=-3", "WISP_MAX_CONNS_PER_IP"},
		{"WISP_WRITE_POLICY_PLUGIN=/no/such/plugin", "cannot find the program"},
		{"WISP_WRITE_POLICY_PLUGIN=" + notExec, "is not an executable file"},
		{"WISP_WRITE_POLICY_TIMEOUT=0s", "WISP_WRITE_POLICY_TIMEOUT"},
		{"WISP_REAL_IP_HEADER=X Forwarded", "WISP_REAL_IP_HEADER"},
	}
	for _, tt := range tests {
		if _, err := loadConfig([]string{tt.env}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to mention %q", tt.env, err, tt.want)
		}
	}
	cfg, err := loadConfig([]string{
		"WISP_AUTH=write",
		"WISP_ALLOW_PUBKEYS=npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg, " + strings.Repeat("ab", 32),
		"WISP_EVENT_RATE_IP=30/1m",
		"WISP_ALLOW_KINDS=0,1,30000-39999",
		"WISP_WRITE_POLICY_PLUGIN=sh -c 'cat'", // a command: not checked as a path
	})
	if err != nil {
		t.Fatal(err)
	}
	pc := cfg.policyConfig(nil)
	if pc.Auth != wisp.AuthWrite || pc.EventRateIP != (policy.Rate{N: 30, Per: time.Minute}) || pc.Plugin != "sh -c 'cat'" {
		t.Errorf("policy config %+v", pc)
	}
	l := cfg.lists()
	if !l.PubkeyAllowed("7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e") || l.PubkeyAllowed(strings.Repeat("cd", 32)) {
		t.Error("allow list not carried over")
	}
	if !l.KindAllowed(30001) || l.KindAllowed(7) {
		t.Error("kind list not carried over")
	}
}

// exampleEnv reads the settings of config.example.env, uncommented, as
// environ entries: every default, set explicitly.
func exampleEnv(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../config.example.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); exampleSetting.MatchString(line) {
			env = append(env, strings.TrimPrefix(line, "#"))
		}
	}
	return env
}

// The README's three recipes, on top of config.example.env, are valid
// configurations that set up what they promise.
func TestReadmeRecipes(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)#### Recipe: ([^\n]*)\n.*?```sh\n(.*?)```")
	recipes := re.FindAllStringSubmatch(string(b), -1)
	if len(recipes) != 3 {
		t.Fatalf("found %d recipes in README.md, want 3", len(recipes))
	}
	npub := "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
	for _, r := range recipes {
		env := exampleEnv(t)
		for line := range strings.SplitSeq(r[2], "\n") {
			line, _, _ = strings.Cut(line, "#")
			if line = strings.TrimSpace(line); line != "" {
				env = append(env, strings.ReplaceAll(line, "npub1…", npub))
			}
		}
		cfg, err := loadConfig(env)
		if err != nil {
			t.Errorf("recipe %q: %v", r[1], err)
			continue
		}
		p, err := policy.New(cfg.policyConfig(nil), cfg.lists())
		if err != nil {
			t.Fatal(err)
		}
		lim := p.Limitation()
		switch {
		case strings.Contains(r[1], "private"):
			if !lim.AuthRequired || cfg.lists().PubkeyAllowed(strings.Repeat("ab", 32)) {
				t.Errorf("private recipe: %+v", lim)
			}
		case strings.Contains(r[1], "public"):
			pc := cfg.policyConfig(nil)
			if lim.AuthRequired || pc.EventRateIP.Unlimited() || pc.EventRatePubkey.Unlimited() || pc.ReqRateIP.Unlimited() || pc.MaxConnsPerIP == 0 || pc.MinPoW == 0 {
				t.Errorf("public recipe: %+v", pc)
			}
		case strings.Contains(r[1], "community"):
			if !cfg.groupsOn() || !cfg.membershipOn() || cfg.Auth == "open" || cfg.PublicURL == "" || cfg.AdminPubkeys == "" {
				t.Errorf("community recipe: %+v", cfg)
			}
		default:
			t.Errorf("unknown recipe %q", r[1])
		}
	}
}

// serving starts run(serve) with environ and returns its address.
func serving(t *testing.T, environ ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	logs := &lockedBuffer{}
	go func() {
		done <- run(ctx, nil, append([]string{"WISP_LISTEN=127.0.0.1:0", "WISP_DATA_DIR=" + t.TempDir()}, environ...), nil,
			io.Discard, logs, func(a net.Addr) { addrc <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v\n%s", err, logs)
		}
	})
	select {
	case a := <-addrc:
		return a.String()
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatal("relay did not start")
	}
	return ""
}

// The variables reach the running relay: NIP-11 tells what is in force, and
// an admin renames the relay over NIP-86.
func TestServeWiresPolicyAndManagement(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	addr := serving(t, "WISP_AUTH=all", "WISP_MIN_POW=10", "WISP_ADMIN_PUBKEYS="+pk)
	base := "http://" + addr + "/"

	info := func() (doc struct {
		Name string `json:"name"`
		NIPs []int  `json:"supported_nips"`
		Lim  struct {
			Auth bool `json:"auth_required"`
			PoW  int  `json:"min_pow_difficulty"`
		} `json:"limitation"`
	}) {
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		req.Header.Set("Accept", "application/nostr+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	doc := info()
	if !doc.Lim.Auth || doc.Lim.PoW != 10 || !slices.Contains(doc.NIPs, 86) || !slices.Contains(doc.NIPs, 13) {
		t.Fatalf("NIP-11: %+v", doc)
	}

	body := []byte(`{"method":"changerelayname","params":["managed"]}`)
	sum := sha256.Sum256(body)
	ev := nostr.Event{Kind: 27235, CreatedAt: nostr.Now(), Tags: nostr.Tags{
		{"u", "ws://" + addr}, {"method", "POST"}, {"payload", hex.EncodeToString(sum[:])},
	}}
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	evJSON, _ := json.Marshal(ev)
	req, _ := http.NewRequest(http.MethodPost, base, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/nostr+json+rpc")
	req.Header.Set("Authorization", "Nostr "+base64.StdEncoding.EncodeToString(evJSON))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(out) != `{"result":true}` {
		t.Fatalf("changerelayname: HTTP %d %s", resp.StatusCode, out)
	}
	if doc := info(); doc.Name != "managed" {
		t.Fatalf("name after changerelayname: %q", doc.Name)
	}
}

func TestScanAndDelete(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "wisp.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sk := nostr.GeneratePrivateKey()
	var items []storage.Item
	var notes []string
	for i := range 5 {
		kind := 1
		if i >= 3 {
			kind = 7
		}
		ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(time.Now().Unix() - int64(i)), Tags: nostr.Tags{}, Content: "x"}
		ev.Sign(sk)
		raw, _ := json.Marshal(ev)
		items = append(items, storage.Item{Event: ev, Raw: raw})
		if kind == 1 {
			notes = append(notes, ev.ID)
		}
	}
	if _, err := store.Save(ctx, items); err != nil {
		t.Fatal(err)
	}
	store.Close()
	env := []string{"WISP_DATA_DIR=" + dir}
	runEnv := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := report(run(t.Context(), args, env, nil, &out, &errb, nil), &errb)
		return out.String(), errb.String(), code
	}

	out, errOut, code := runEnv("scan", `{"kinds":[1]}`)
	if code != 0 {
		t.Fatalf("scan: exit %d %s", code, errOut)
	}
	var got []string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var ev nostr.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("scan line %q: %v", line, err)
		}
		got = append(got, ev.ID)
	}
	if !slices.Equal(got, notes) {
		t.Fatalf("scan printed %v, want %v (newest first)", got, notes)
	}
	if out, _, _ := runEnv("scan", "--filter", `[{"kinds":[7]},{"kinds":[1],"limit":1}]`); strings.Count(out, "\n") != 3 {
		t.Fatalf("scan of two filters:\n%s", out)
	}

	if out, _, code := runEnv("delete", "--filter", `{"kinds":[1]}`); code != 0 || !strings.HasPrefix(out, "3 events match; nothing deleted") {
		t.Fatalf("dry run: exit %d %q", code, out)
	}
	if out, _, code := runEnv("delete", "--filter", `{"kinds":[1],"limit":1}`, "--yes"); code != 0 || out != "3 events matched; deleted 3.\n" {
		t.Fatalf("delete: exit %d %q", code, out)
	}
	if out, _, _ := runEnv("scan", "{}"); strings.Count(out, "\n") != 2 {
		t.Fatalf("left after delete:\n%s", out)
	}
	for _, args := range [][]string{{"delete"}, {"delete", "--filter", "{}", "--yes"}, {"delete", "--filter", "not json"}, {"scan"}, {"scan", "{}", "{}"},
		// A misspelt key would have left only "kinds" standing: every kind 7.
		{"delete", "--filter", `{"kinds":[7],"author":["` + strings.Repeat("0", 64) + `"]}`, "--yes"},
		{"delete", "--filter", `{"kinds":[7],"foo":1}`, "--yes"}} {
		if _, errOut, code := runEnv(args...); code != 2 || !strings.Contains(errOut, "--help' for usage") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
	if out, _, _ := runEnv("scan", "{}"); strings.Count(out, "\n") != 2 {
		t.Fatalf("a refused delete deleted:\n%s", out)
	}
}
