package relay

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

func testInfoParams() infoParams {
	lim := DefaultLimits()
	return infoParams{
		info: Info{
			Name:        "Test <relay> & co",
			Description: "A relay for tests.",
			PubKey:      hexPub,
			Contact:     "mailto:ops@example.com",
		},
		lim:      lim,
		version:  "0.1.0",
		verifier: "btcec",
		nips:     []int{40, 1, 11, 9, 11},
		url:      "wss://relay.example.com",
	}
}

func TestInfoDocument(t *testing.T) {
	p := testInfoParams()
	var doc map[string]any
	if err := json.Unmarshal(infoDocument(p), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name":           "Test <relay> & co",
		"description":    "A relay for tests.",
		"pubkey":         hexPub,
		"contact":        "mailto:ops@example.com",
		"software":       "https://github.com/wisp-relay/wisp",
		"version":        "0.1.0+btcec",
		"supported_nips": []any{1.0, 9.0, 11.0, 40.0},
	}
	for k, v := range want {
		if !reflect.DeepEqual(doc[k], v) {
			t.Errorf("%s = %#v, want %#v", k, doc[k], v)
		}
	}
	if _, ok := doc["icon"]; ok {
		t.Error("empty icon not omitted")
	}
	lim, _ := doc["limitation"].(map[string]any)
	wantLim := map[string]any{
		"max_message_length":     float64(512 * 1024),
		"max_subscriptions":      50.0,
		"max_filters":            10.0,
		"max_limit":              5000.0,
		"max_subid_length":       64.0,
		"max_event_tags":         2000.0,
		"max_content_length":     float64(128 * 1024),
		"min_pow_difficulty":     0.0,
		"auth_required":          false,
		"payment_required":       false,
		"restricted_writes":      false,
		"created_at_upper_limit": 900.0,
		"default_limit":          500.0,
	}
	if !reflect.DeepEqual(lim, wantLim) {
		t.Errorf("limitation = %v\nwant %v", lim, wantLim)
	}

	// A past bound appears as seconds; an icon when set.
	p.lim.CreatedAtPast = 365 * 24 * time.Hour
	p.info.Icon = "https://example.com/icon.png"
	p.verifier = "libsecp256k1"
	doc = nil
	if err := json.Unmarshal(infoDocument(p), &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc["limitation"].(map[string]any)["created_at_lower_limit"]; got != 31536000.0 {
		t.Errorf("created_at_lower_limit = %v", got)
	}
	if doc["icon"] != "https://example.com/icon.png" || doc["version"] != "0.1.0+libsecp256k1" {
		t.Errorf("icon %v version %v", doc["icon"], doc["version"])
	}
}

func TestInfoDocumentEmpty(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(infoDocument(infoParams{}), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "description", "pubkey", "contact", "icon", "version"} {
		if _, ok := doc[k]; ok {
			t.Errorf("empty %s not omitted", k)
		}
	}
	if nips, ok := doc["supported_nips"].([]any); !ok || len(nips) != 0 {
		t.Errorf("supported_nips = %#v, want []", doc["supported_nips"])
	}
}

func TestServeInfo(t *testing.T) {
	doc := infoDocument(testInfoParams())
	cors := func(t *testing.T, h http.Header) {
		t.Helper()
		for k, v := range map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Headers": "*",
			"Access-Control-Allow-Methods": "GET, OPTIONS",
		} {
			if got := h.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	}

	t.Run("GET", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Accept", "application/nostr+json")
		rec := httptest.NewRecorder()
		serveInfo(rec, req, doc)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/nostr+json" {
			t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec.Body.String() != string(doc) {
			t.Fatalf("body %q", rec.Body)
		}
		cors(t, rec.Header())
	})
	t.Run("preflight", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodOptions, "/", nil)
		req.Header.Set("Origin", "https://client.example")
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "accept")
		rec := httptest.NewRecorder()
		serveInfo(rec, req, doc)
		if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Fatalf("%d %q", rec.Code, rec.Body)
		}
		cors(t, rec.Header())
	})
	t.Run("HEAD", func(t *testing.T) {
		rec := httptest.NewRecorder()
		serveInfo(rec, httptest.NewRequest(http.MethodHead, "/", nil), doc)
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
			t.Fatalf("%d %q", rec.Code, rec.Body)
		}
	})
	t.Run("POST", func(t *testing.T) {
		rec := httptest.NewRecorder()
		serveInfo(rec, httptest.NewRequest(http.MethodPost, "/", nil), doc)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("%d", rec.Code)
		}
		cors(t, rec.Header())
	})
	t.Run("over a server", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if wantsInfo(r) {
				serveInfo(w, r, doc)
				return
			}
			http.NotFound(w, r)
		}))
		defer srv.Close()
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Accept", "application/nostr+json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || got["software"] != softwareURL {
			t.Fatalf("%v %v", err, got)
		}
		cors(t, resp.Header)
	})
}

func TestWantsInfo(t *testing.T) {
	cases := map[string]bool{
		"application/nostr+json":                      true,
		"Application/Nostr+JSON":                      true,
		"text/html, application/nostr+json;q=0.9":     true,
		" application/nostr+json ; charset=utf-8":     true,
		"text/html,application/xhtml+xml,*/*;q=0.8":   false,
		"application/json":                            false,
		"application/nostr+jsonx":                     false,
		"":                                            false,
		"text/plain; note=\"application/nostr+json\"": false,
	}
	for accept, want := range cases {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if got := wantsInfo(req); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
	// Several Accept headers.
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Add("Accept", "text/html")
	req.Header.Add("Accept", "application/nostr+json")
	if !wantsInfo(req) {
		t.Error("second Accept header ignored")
	}
}
