package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// dashboardData logs in with the token (the login page's form) and polls
// the dashboard's JSON until cond holds.
func dashboardData(t *testing.T, addr, token string, cond func(data []byte) bool) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm("http://"+addr+"/dashboard/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // the form's redirect, followed to the page
		t.Fatalf("login: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Get("http://" + addr + "/dashboard/data")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("data: %d %s", resp.StatusCode, b)
		}
		if cond(b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard data did not get there in 15s: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wisp serve has the dashboard at /dashboard with the metrics token, fed
// by the relay; the busiest IPs are shown with the tags of the log.
func TestDashboardServed(t *testing.T) {
	addr, _, logs := startWisp(t, "WISP_METRICS_TOKEN=dash-token")
	if !strings.Contains(logs.String(), "msg=dashboard url=http://"+addr+"/dashboard") {
		t.Fatalf("the start-up log does not say where the dashboard is:\n%s", logs)
	}
	c := dialWisp(t, addr)
	sk := nostr.GeneratePrivateKey()
	if !c.publish(signed(t, sk, 1, time.Now().Unix(), "hello")) {
		t.Fatal("event refused")
	}
	tag := regexp.MustCompile(`msg="connection opened" remote=(ip-[0-9a-f]{16})`).FindStringSubmatch(logs.String())
	if tag == nil {
		t.Fatalf("no hashed remote in the log:\n%s", logs)
	}
	pk, _ := nostr.GetPublicKey(sk)
	type entry struct {
		Key   string
		Count int64
	}
	var got struct {
		IPs      []entry `json:"ips"`
		IPsShown string  `json:"ips_shown"`
		Authors  []entry
		Kinds    []struct{ Kind, Events int }
	}
	dashboardData(t, addr, "dash-token", func(b []byte) bool {
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		return slices.Contains(got.IPs, entry{tag[1], 1}) && slices.Contains(got.Authors, entry{pk, 1}) &&
			len(got.Kinds) == 1 && got.Kinds[0].Kind == 1 && got.Kinds[0].Events == 1
	})
	if got.IPsShown != "hashed" {
		t.Fatalf("ips shown %q", got.IPsShown)
	}
}

// Without anyone to log in, or with WISP_DASHBOARD=off, there is no
// dashboard; /dashboard is not taken for the relay either.
func TestDashboardOff(t *testing.T) {
	for _, env := range [][]string{nil, {"WISP_METRICS_TOKEN=t", "WISP_DASHBOARD=off"}} {
		addr, _, logs := startWisp(t, env...)
		for _, path := range []string{"/dashboard", "/dashboard/data"} {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%v: %s answered %d, want 404", env, path, resp.StatusCode)
			}
		}
		if strings.Contains(logs.String(), "msg=dashboard") {
			t.Errorf("%v: the log announces a dashboard", env)
		}
	}
}
