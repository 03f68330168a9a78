package dashboard

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/wisp-relay/wisp/internal/wstest"
)

// Only an admin's NIP-98 event for this very URL, fresh, well signed and
// used once, or the metrics token, opens a session; whatever is refused
// gets no cookie and no data.
func TestLoginIsRequiredAndChecked(t *testing.T) {
	s := startSite(t)
	login := s.http + "/dashboard/login"
	stranger := wstest.NewKey(t)

	anon := newBrowser(t)
	if resp, _ := anon.do("GET", s.http+"/dashboard/data", "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("data without a login: %d, want 401", resp.StatusCode)
	}
	resp, page := anon.do("GET", s.http+"/dashboard", "", "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="login-nostr"`) || !strings.Contains(page, `name="token"`) ||
		strings.Contains(page, `data-f="connections"`) {
		t.Fatalf("the page without a login must be the login form, nothing else:\n%s", page)
	}

	replayed := nip98(t, s.admin, "POST", login, nil)
	if resp, body := newBrowser(t).do("POST", login, replayed, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use of a good header: %d %s", resp.StatusCode, body)
	}
	refused := map[string]struct {
		auth, ctype, body string
		status            int
	}{
		"bad signature":  {auth: spoilSig(t, nip98(t, s.admin, "POST", login, nil)), status: 401},
		"wrong host":     {auth: nip98(t, s.admin, "POST", "https://relay.example.com/dashboard/login", nil), status: 401},
		"wrong path":     {auth: nip98(t, s.admin, "POST", s.http+"/dashboard", nil), status: 401},
		"wrong method":   {auth: nip98(t, s.admin, "GET", login, nil), status: 401},
		"wrong kind":     {auth: nip98(t, s.admin, "POST", login, func(ev *nostr.Event) { ev.Kind = 22242 }), status: 401},
		"old event":      {auth: nip98(t, s.admin, "POST", login, func(ev *nostr.Event) { ev.CreatedAt -= 120 }), status: 401},
		"event of later": {auth: nip98(t, s.admin, "POST", login, func(ev *nostr.Event) { ev.CreatedAt += 120 }), status: 401},
		"replayed":       {auth: replayed, status: 401},
		"not an admin":   {auth: nip98(t, stranger, "POST", login, nil), status: 403},
		"wrong token":    {ctype: "application/x-www-form-urlencoded", body: "token=guess", status: 401},
		"wrong bearer":   {auth: "Bearer guess", status: 401},
		"nothing":        {status: 401},
		"empty token":    {ctype: "application/x-www-form-urlencoded", body: "token=", status: 401},
		"token as nostr": {auth: "Nostr " + testToken, status: 401},
		"a prefix of it": {auth: "Bearer " + testToken[:len(testToken)-1], status: 401},
		"token and more": {auth: "Bearer " + testToken + "x", status: 401},
		"basic with it":  {auth: "Basic " + testToken, status: 401},
		"wrong payload":  {auth: nip98(t, s.admin, "POST", login, func(ev *nostr.Event) { ev.Tags = append(ev.Tags, nostr.Tag{"payload", strings.Repeat("0", 64)}) }), status: 401},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t)
			resp, body := b.do("POST", login, tc.auth, tc.ctype, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("login: %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if len(resp.Cookies()) > 0 {
				t.Fatalf("a refused login set a cookie: %v", resp.Cookies())
			}
			if resp, _ := b.do("GET", s.http+"/dashboard/data", "", "", ""); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("data after a refused login: %d", resp.StatusCode)
			}
			// The data endpoint refuses the same credentials, signed for it.
			if tc.auth != "" && !strings.HasPrefix(tc.auth, "Nostr ") {
				if resp, _ := b.do("GET", s.http+"/dashboard/data", tc.auth, "", ""); resp.StatusCode != tc.status {
					t.Fatalf("data with %q: %d, want %d", tc.auth, resp.StatusCode, tc.status)
				}
			}
		})
	}

	// An admin's login: a session that may act.
	admin := newBrowser(t)
	resp, body := admin.do("POST", login, nip98(t, s.admin, "POST", login, nil), "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"admin":true`) {
		t.Fatalf("admin login: %d %s", resp.StatusCode, body)
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/dashboard" {
		t.Fatalf("session cookie %v: want one, HttpOnly, SameSite=Strict, Path=/dashboard", ck)
	}
	if d := admin.data(s.http); !d.Admin || d.Viewer != s.admin.PK {
		t.Fatalf("admin session: admin %v viewer %q", d.Admin, d.Viewer)
	}
	resp, page = admin.do("GET", s.http+"/dashboard", "", "", "")
	if !strings.Contains(page, `data-method="banpubkey"`) || !strings.Contains(page, s.admin.PK) {
		t.Fatalf("the admin's page has no admin forms:\n%s", page)
	}

	// The token's: a session that watches.
	watcher := newBrowser(t)
	watcher.loginToken(s.http)
	if d := watcher.data(s.http); d.Admin || d.Viewer != "token" {
		t.Fatalf("token session: admin %v viewer %q", d.Admin, d.Viewer)
	}
	if _, page := watcher.do("GET", s.http+"/dashboard", "", "", ""); strings.Contains(page, `data-method=`) {
		t.Fatal("the token's page offers admin forms")
	}
	// The token and NIP-98 work on the data endpoint without a session.
	if resp, body := newBrowser(t).do("GET", s.http+"/dashboard/data", "Bearer "+testToken, "", ""); resp.StatusCode != 200 {
		t.Fatalf("data with the bearer token: %d %s", resp.StatusCode, body)
	}
	dataURL := s.http + "/dashboard/data?since=0"
	if resp, body := newBrowser(t).do("GET", dataURL, nip98(t, s.admin, "GET", dataURL, nil), "", ""); resp.StatusCode != 200 {
		t.Fatalf("data with NIP-98: %d %s", resp.StatusCode, body)
	}

	// Logging out ends the session.
	if resp, _ := watcher.do("POST", s.http+"/dashboard/logout", "", "", ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := watcher.do("GET", s.http+"/dashboard/data", "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("data after logout: %d", resp.StatusCode)
	}
}

// With no token configured, no token logs in, not even an empty one.
func TestNoTokenNoTokenLogin(t *testing.T) {
	s := startSite(t, func(c *Config) { c.Token = "" })
	for _, auth := range []string{"Bearer ", "Bearer"} {
		if resp, _ := newBrowser(t).do("GET", s.http+"/dashboard/data", auth, "", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("data with %q and no token configured: %d", auth, resp.StatusCode)
		}
	}
	if _, page := newBrowser(t).do("GET", s.http+"/dashboard", "", "", ""); strings.Contains(page, `name="token"`) {
		t.Fatal("the login page offers a token login with no token configured")
	}
}

// The figures move with what clients do over a real websocket, with real
// signed events: accepted and refused events (by reason), connections and
// subscriptions, queries, the kinds stored, the busiest authors and IPs.
func TestFiguresMoveWithTraffic(t *testing.T) {
	s := startSite(t)
	b := newBrowser(t)
	b.loginToken(s.http)
	before := b.data(s.http)
	if n := len(before.Samples); n == 0 || before.Samples[n-1].AcceptedTotal != 0 {
		t.Fatalf("samples before any traffic: %+v", before.Samples)
	}

	author := wstest.NewKey(t)
	c := wstest.Dial(t, s.ws)
	const n = 7
	for range n {
		c.MustPublish(author.Sign(t, 1))
	}
	c.MustPublish(author.Sign(t, 30023, nostr.Tag{"d", "x"}))
	bad := author.Sign(t, 1)
	bad.Content = "not what was signed"
	bad.ID = bad.GetID() // a good id, a bad signature
	c.Refused(bad, "invalid")
	c.Send("REQ", "live", nostr.Filter{Kinds: []int{1}, Limit: 1})
	for m := c.Next(); wstest.Str(t, m[0]) != "EOSE"; m = c.Next() {
	}

	var last Data
	eventually(t, "the figures to show the traffic", func() (bool, string) {
		last = b.data(s.http)
		smp := last.Samples
		if len(smp) == 0 {
			return false, "no samples"
		}
		cur := smp[len(smp)-1]
		anyAccepted := slices.ContainsFunc(smp, func(x Sample) bool { return x.Accepted > 0 })
		anyInvalid := slices.ContainsFunc(smp, func(x Sample) bool { return x.Rejected["invalid"] > 0 })
		anyQuery := slices.ContainsFunc(smp, func(x Sample) bool { return x.Queries > 0 && x.QueryAvgMs > 0 && x.QueryP95Ms > 0 })
		kinds := map[int]int64{}
		for _, k := range last.Kinds {
			kinds[k.Kind] = k.Events
		}
		ok := cur.AcceptedTotal == n+1 && cur.RejectedTotal == 1 && anyAccepted && anyInvalid && anyQuery &&
			cur.Connections == 1 && cur.Subscriptions == 1 && cur.DBBytes > 0 &&
			last.EventsStored == n+1 && kinds[1] == n && kinds[30023] == 1 &&
			slices.Contains(last.RecentKinds, Entry{"1", n}) &&
			slices.Contains(last.Authors, Entry{author.PK, n + 1}) && // the bad signature is not the author's
			slices.Contains(last.IPs, Entry{"tag-of-127.0.0.1", n + 2})
		return ok, fmt.Sprintf("last sample %+v, stored %d, kinds %v, recent %v, authors %v, ips %v; accepted/s seen %v, invalid/s %v, query %v",
			cur, last.EventsStored, last.Kinds, last.RecentKinds, last.Authors, last.IPs, anyAccepted, anyInvalid, anyQuery)
	})

	// The script asks only for what it has not seen.
	tail := last.Samples[len(last.Samples)-1].T
	resp, body := b.do("GET", fmt.Sprintf("%s/dashboard/data?since=%d", s.http, tail), "", "", "")
	var d Data
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("data since: %d %s", resp.StatusCode, body)
	}
	for _, smp := range d.Samples {
		if smp.T <= tail {
			t.Fatalf("sample at %d returned for since=%d", smp.T, tail)
		}
	}

	// The server-rendered page shows the same figures.
	_, page := b.do("GET", s.http+"/dashboard", "", "", "")
	for _, want := range []string{`data-f="accepted_total">8<`, `data-f="events_stored">8<`, author.PK, "tag-of-127.0.0.1"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// Closing the connection shows.
	c.Close()
	eventually(t, "the connection to go", func() (bool, string) {
		smp := b.data(s.http).Samples
		cur := smp[len(smp)-1]
		return cur.Connections == 0 && cur.Subscriptions == 0, fmt.Sprintf("%+v", cur)
	})
}

// Addresses are neither counted nor shown when the log leaves them out.
func TestIPsOff(t *testing.T) {
	s := startSite(t, func(c *Config) {
		c.Tally, c.ShowIP, c.IPsShown = NewTally(false), nil, "off"
	})
	// The site's relay feeds its own tally; this dashboard's has no IPs.
	b := newBrowser(t)
	b.loginToken(s.http)
	c := wstest.Dial(t, s.ws)
	c.MustPublish(wstest.NewKey(t).Sign(t, 1))
	d := b.data(s.http)
	if d.IPsShown != "off" || len(d.IPs) != 0 || s.dash.cfg.Tally.ips != nil {
		t.Fatalf("ips %v shown %q", d.IPs, d.IPsShown)
	}
	if _, page := b.do("GET", s.http+"/dashboard", "", "", ""); !strings.Contains(page, "not counted (WISP_LOG_IPS=off)") {
		t.Fatal("the page does not say addresses are not counted")
	}
}

// What the page shows is escaped, the page runs no script but its own
// file, and nothing of it is cached.
func TestPageIsEscapedStrictAndNotCached(t *testing.T) {
	const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	s := startSite(t, func(c *Config) { c.RelayName = func() string { return evil } })
	b := newBrowser(t)
	b.loginToken(s.http)
	s.tally.authors.add(evil) // as if a key could be markup
	s.tally.kinds.add(evil)

	for _, path := range []string{"/dashboard", "/dashboard/data", "/dashboard/login"} {
		method := "GET"
		if path == "/dashboard/login" {
			method = "POST"
		}
		resp, body := b.do(method, s.http+path, "", "", "")
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline script", path, csp)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", path, cc)
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s: markup from data reached the page unescaped:\n%s", path, body)
		}
	}
	_, page := b.do("GET", s.http+"/dashboard", "", "", "")
	if !strings.Contains(page, "&lt;script&gt;") {
		t.Fatalf("the relay's name is not shown escaped:\n%s", page)
	}
	// No handler or style attribute in any tag: CSP would block them.
	if m := regexp.MustCompile(`<[a-zA-Z][^>]*\s(on[a-z]+|style)=`).FindString(page); m != "" {
		t.Errorf("page has an inline handler or style: %s", m)
	}
	if n := strings.Count(page, "<script"); n != 1 || !strings.Contains(page, `<script src="/dashboard/dashboard.js" defer></script>`) {
		t.Errorf("want exactly one script, the dashboard's file: %d", n)
	}
	resp, js := b.do("GET", s.http+"/dashboard/dashboard.js", "", "", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || strings.Contains(js, "innerHTML") {
		t.Fatalf("script: %d %s, innerHTML used: %v", resp.StatusCode, resp.Header.Get("Content-Type"), strings.Contains(js, "innerHTML"))
	}
}

// The busiest lists hold a bounded number of keys however many distinct
// authors and addresses clients bring, over a real relay.
func TestBusiestListsAreBounded(t *testing.T) {
	s := startSite(t)
	c := wstest.Dial(t, s.ws)
	heavy := wstest.NewKey(t)
	for i := range 3 * busiestKept {
		c.MustPublish(wstest.NewKey(t).Sign(t, 1))
		if i%8 == 0 {
			c.MustPublish(heavy.Sign(t, 1))
		}
	}
	if got := s.tally.authors.size(); got > 2*busiestKept {
		t.Fatalf("the authors' sketch holds %d keys, more than %d", got, 2*busiestKept)
	}
	b := newBrowser(t)
	b.loginToken(s.http)
	d := b.data(s.http)
	if len(d.Authors) == 0 || d.Authors[0].Key != heavy.PK || d.Authors[0].Count < 3*busiestKept/8 {
		t.Fatalf("the heavy author is not first: %v", d.Authors)
	}
	if len(d.Authors) > busiestShown {
		t.Fatalf("%d authors shown", len(d.Authors))
	}
}

// spoilSig changes one digit of a NIP-98 header's signature.
func spoilSig(t *testing.T, header string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(header, "Nostr "))
	if err != nil {
		t.Fatal(err)
	}
	var ev nostr.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	flip := map[byte]byte{'0': '1'}
	last := ev.Sig[len(ev.Sig)-1]
	if r, ok := flip[last]; ok {
		last = r
	} else {
		last = '0'
	}
	ev.Sig = ev.Sig[:len(ev.Sig)-1] + string(last)
	b, _ := json.Marshal(ev)
	return "Nostr " + base64.StdEncoding.EncodeToString(b)
}

// Guessing the token from one address is slowed down: after a burst of
// wrong tokens that address is answered 429, even with the right one,
// while another address still logs in.
func TestTokenGuessesAreLimited(t *testing.T) {
	s := startSite(t, func(c *Config) {
		// Addresses of the test's choosing, as a proxy's header would give.
		c.ClientIP = func(req *http.Request) string { return req.Header.Get("X-Test-Client") }
	})
	try := func(client, token string) int {
		req, err := http.NewRequest("GET", s.http+"/dashboard/data", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Test-Client", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range guessBurst {
		if got := try("guesser", fmt.Sprintf("guess-%d", i)); got != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i, got)
		}
	}
	if got := try("guesser", "one more"); got != http.StatusTooManyRequests {
		t.Fatalf("wrong token past the burst: %d, want 429", got)
	}
	if got := try("guesser", testToken); got != http.StatusTooManyRequests {
		t.Fatalf("the right token from the guessing address: %d, want 429 until it waits", got)
	}
	if got := try("operator", testToken); got != http.StatusOK {
		t.Fatalf("the right token from another address: %d, want 200", got)
	}
}

// The table of guessing addresses stays bounded however many there are.
func TestGuessLimiterBounded(t *testing.T) {
	var g guessLimiter
	now := time.Now()
	for i := range 3 * maxGuessers {
		g.failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	if n := len(g.m); n > maxGuessers {
		t.Fatalf("%d addresses held, want at most %d", n, maxGuessers)
	}
	g.failed("late", now)
	if !g.allowed("late", now) {
		t.Fatal("a new address after the table filled has no tries left")
	}
}
