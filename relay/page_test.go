package relay

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func testPageParams() pageParams {
	return pageParams{
		info: Info{
			Name:        "Wisp test",
			Description: "First paragraph.\n\nSecond paragraph.",
			PubKey:      hexPub,
			Contact:     "https://example.com/contact",
		},
		lim:          DefaultLimits(),
		version:      "0.1.0",
		verifier:     "btcec",
		nips:         []int{1, 9, 11, 40},
		url:          "wss://relay.example.com",
		eventsStored: 1234567,
		connections:  42,
	}
}

func render(t *testing.T, p pageParams) string {
	t.Helper()
	var b strings.Builder
	if err := renderPage(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRenderPage(t *testing.T) {
	page := render(t, testPageParams())
	for _, want := range []string{
		"<title>Wisp test</title>",
		"First paragraph.",
		`<code class="url">wss://relay.example.com</code>`,
		"0.1.0&#43;btcec", // html/template escapes +
		`href="https://github.com/wisp-relay/wisp"`,
		`<a href="https://github.com/nostr-protocol/nips/blob/master/01.md">NIP-01</a>`,
		`<a href="https://github.com/nostr-protocol/nips/blob/master/40.md">NIP-40</a>`,
		"1,234,567", "events stored",
		"<b>42</b>", "open connections",
		"512 KiB", "256 KiB", "2,000", "15 minutes ahead", "64 characters", "5,000 at most, 500 by default",
		hexPub,
		`<a href="https://example.com/contact">https://example.com/contact</a>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestRenderPageUnknownAndEmpty(t *testing.T) {
	p := testPageParams()
	p.eventsStored = -1
	p.info = Info{}
	page := render(t, p)
	if !strings.Contains(page, "<b>unknown</b>") {
		t.Error("unknown event count not shown as unknown")
	}
	if strings.Contains(page, "Operator") {
		t.Error("operator section shown with no contact or pubkey")
	}
	if !strings.Contains(page, "<h1>A wisp relay</h1>") {
		t.Error("no default name")
	}
}

func TestRenderPageEscapes(t *testing.T) {
	p := testPageParams()
	p.info.Name = `<script>alert("name")</script>`
	p.info.Description = `<img src=x onerror=alert(1)>`
	p.info.Contact = `javascript:alert(1)`
	p.info.Icon = `javascript:alert(2)`
	p.info.PubKey = `"><script>alert(3)</script>`
	p.url = `ws://evil"><script>alert(4)</script>`
	page := render(t, p)
	for _, bad := range []string{"<script>", "<img src=x", `href="javascript:`, `src="javascript:`, `"><`} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;") {
		t.Error("hostile name not shown escaped")
	}
	// A contact that is not a web or mail URL is text, not a link.
	if !strings.Contains(page, `<td class="mono">javascript:alert(1)</td>`) {
		t.Error("hostile contact not rendered as plain text")
	}
}

func TestRelayURL(t *testing.T) {
	req := func(host string, hdr map[string]string, tlsOn bool) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		if tlsOn {
			r.TLS = &tls.ConnectionState{}
		} else {
			r.TLS = nil
		}
		return r
	}
	cases := []struct {
		name   string
		r      *http.Request
		public string
		want   string
	}{
		{"plain", req("relay.example.com", nil, false), "", "ws://relay.example.com"},
		{"port", req("localhost:7447", nil, false), "", "ws://localhost:7447"},
		{"tls", req("relay.example.com", nil, true), "", "wss://relay.example.com"},
		{"x-forwarded-proto", req("relay.example.com", map[string]string{"X-Forwarded-Proto": "https"}, false), "", "wss://relay.example.com"},
		{"x-forwarded-proto list", req("relay.example.com", map[string]string{"X-Forwarded-Proto": "HTTPS, http"}, false), "", "wss://relay.example.com"},
		{"x-forwarded-proto http", req("relay.example.com", map[string]string{"X-Forwarded-Proto": "http"}, false), "", "ws://relay.example.com"},
		{"forwarded", req("relay.example.com", map[string]string{"Forwarded": `for=1.2.3.4;proto="https";host=x`}, false), "", "wss://relay.example.com"},
		{"public url wins", req("10.0.0.1:7447", nil, false), "wss://relay.example.com", "wss://relay.example.com"},
	}
	for _, tc := range cases {
		if got := relayURL(tc.r, tc.public); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
