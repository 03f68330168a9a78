package relay

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-relay/wisp"
)

// softwareURL is what NIP-11's software field must be: the project's homepage.
const softwareURL = "https://github.com/wisp-relay/wisp"

// infoParams is what the NIP-11 document is made of. url is not part of
// NIP-11 and is not served; it is accepted so that callers can fill
// infoParams and pageParams alike.
type infoParams struct {
	info              Info
	lim               Limits
	version, verifier string
	nips              []int
	url               string
	policy            wisp.Limitation // auth_required, restricted_writes, min_pow_difficulty
	nip29             any             // the "nip29" object (groups on), or nil
}

type infoDoc struct {
	Name          string    `json:"name,omitempty"`
	Description   string    `json:"description,omitempty"`
	PubKey        string    `json:"pubkey,omitempty"`
	Self          string    `json:"self,omitempty"`
	Contact       string    `json:"contact,omitempty"`
	Icon          string    `json:"icon,omitempty"`
	Software      string    `json:"software"`
	Version       string    `json:"version,omitempty"`
	SupportedNIPs []int     `json:"supported_nips"`
	Limitation    infoLimit `json:"limitation"`
	NIP29         any       `json:"nip29,omitempty"`
}

type infoLimit struct {
	MaxMessageLength int  `json:"max_message_length"`
	MaxSubscriptions int  `json:"max_subscriptions"`
	MaxFilters       int  `json:"max_filters"`
	MaxLimit         int  `json:"max_limit"`
	MaxSubIDLength   int  `json:"max_subid_length"`
	MaxEventTags     int  `json:"max_event_tags"`
	MaxContentLength int  `json:"max_content_length"`
	MinPowDifficulty int  `json:"min_pow_difficulty"`
	AuthRequired     bool `json:"auth_required"`
	PaymentRequired  bool `json:"payment_required"`
	RestrictedWrites bool `json:"restricted_writes"`
	// Seconds before and after now, as NIP-11 reads them; the lower one is
	// omitted when there is no bound.
	CreatedAtLowerLimit int64 `json:"created_at_lower_limit,omitempty"`
	CreatedAtUpperLimit int64 `json:"created_at_upper_limit"`
	DefaultLimit        int   `json:"default_limit"`
}

// infoDocument returns the NIP-11 document. Its version is version+verifier
// (e.g. "0.1.0+btcec"), so that a report names the signature code in use.
func infoDocument(p infoParams) []byte {
	nips := slices.Clone(p.nips)
	slices.Sort(nips)
	nips = slices.Compact(nips)
	if nips == nil {
		nips = []int{}
	}
	doc := infoDoc{
		Name:          p.info.Name,
		Description:   p.info.Description,
		PubKey:        p.info.PubKey,
		Self:          p.info.Self,
		Contact:       p.info.Contact,
		Icon:          p.info.Icon,
		Software:      softwareURL,
		Version:       versionString(p.version, p.verifier),
		SupportedNIPs: nips,
		Limitation: infoLimit{
			MaxMessageLength:    p.lim.MaxMessageBytes,
			MaxSubscriptions:    p.lim.MaxSubscriptions,
			MaxFilters:          p.lim.MaxFilters,
			MaxLimit:            p.lim.MaxLimit,
			MaxSubIDLength:      p.lim.MaxSubIDLength,
			MaxEventTags:        p.lim.MaxEventTags,
			MaxContentLength:    p.lim.MaxContentLength,
			CreatedAtLowerLimit: ceilSeconds(p.lim.CreatedAtPast),
			CreatedAtUpperLimit: int64(p.lim.CreatedAtFuture / time.Second),
			DefaultLimit:        p.lim.DefaultLimit,
			AuthRequired:        p.policy.AuthRequired,
			RestrictedWrites:    p.policy.RestrictedWrites,
			MinPowDifficulty:    p.policy.MinPoW,
		},
		NIP29: p.nip29,
	}
	b, err := json.Marshal(doc)
	if err != nil {
		// Strings, ints, bools and the groups' plain object: Marshal cannot fail.
		panic("marshal NIP-11 document: " + err.Error())
	}
	return b
}

// ceilSeconds rounds up, so that a positive bound never reads as 0 (which
// would mean "none").
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// versionString joins wisp's version and the verifier: "0.1.0+btcec".
func versionString(version, verifier string) string {
	switch {
	case version == "":
		return verifier
	case verifier == "":
		return version
	}
	return version + "+" + verifier
}

// serveInfo serves the NIP-11 document doc, with the CORS headers NIP-11
// requires, and answers CORS preflight requests (OPTIONS) with no body.
func serveInfo(w http.ResponseWriter, r *http.Request, doc []byte) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "*")
	h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	// The same URL serves HTML, NIP-11 and websockets depending on Accept.
	h.Add("Vary", "Accept")
	switch r.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		h.Set("Content-Type", "application/nostr+json")
		h.Set("Content-Length", strconv.Itoa(len(doc)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(doc)
		}
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// wantsInfo reports whether the request asks for the NIP-11 document: an
// Accept header naming application/nostr+json (in any case, with or without
// parameters, among other types). A CORS preflight does not carry it; the
// caller routes OPTIONS to serveInfo itself.
func wantsInfo(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "application/nostr+json") {
				return true
			}
		}
	}
	return false
}

// Name is the relay's name as NIP-11 gives it (WISP_RELAY_NAME, or what an
// admin changed it to).
func (r *Relay) Name() string { return r.info().Name }
