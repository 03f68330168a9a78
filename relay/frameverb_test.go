package relay

import "testing"

func TestFrameVerbNoAlloc(t *testing.T) {
	f := frame{head: []byte(`["EVENT","s",`), body: []byte(`{}`), tail: tailBracket}
	if n := testing.AllocsPerRun(100, func() { _ = frameVerb(f) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
	if frameVerb(f) != "EVENT" || frameVerb(frame{body: []byte(`["OK","x",true,""]`)}) != "OK" || frameVerb(frame{body: []byte(`["ZZ"]`)}) != "other" {
		t.Fatal("wrong verb")
	}
}
