package publish

import (
	"encoding/json"
	"math"
	"strings"
	"unicode/utf8"

	"guestagent.io/operator/api/v1alpha1"
)

// DefaultMaxStatusBytes is the default cap on the JSON size of a published status.
const DefaultMaxStatusBytes = 512 << 10

// limiter shortens strings and lists to the schema limits and counts what it dropped.
type limiter struct {
	t v1alpha1.TruncationCounts
}

// str returns s as valid UTF-8 with at most maxRunes runes (the apiserver's maxLength counts
// characters), counting a shortened string.
func (l *limiter) str(s string, maxRunes int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= maxRunes { // byte length bounds rune count
		return s
	}
	n := 0
	for i := range s {
		if n == maxRunes {
			addCount(&l.t.Strings, 1)
			return s[:i]
		}
		n++
	}
	return s
}

// strs caps a string list to maxItems entries of at most maxRunes runes each, adding the number of
// dropped entries to *dropped (when dropped is not nil). An empty result is nil.
func (l *limiter) strs(in []string, maxItems, maxRunes int, dropped *int32) []string {
	if len(in) == 0 {
		return nil
	}
	if len(in) > maxItems {
		if dropped != nil {
			addCount(dropped, len(in)-maxItems)
		}
		in = in[:maxItems]
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = l.str(s, maxRunes)
	}
	return out
}

// capLen returns n capped to maxItems and adds the excess to *dropped.
func capLen(n, maxItems int, dropped *int32) int {
	if n > maxItems {
		addCount(dropped, n-maxItems)
		return maxItems
	}
	return n
}

// addCount adds n to *c, saturating at MaxInt32.
func addCount(c *int32, n int) {
	if int64(*c)+int64(n) > math.MaxInt32 {
		*c = math.MaxInt32
		return
	}
	*c += int32(n)
}

// clampU64 converts a guest byte count to the API's int64, clamping values beyond MaxInt64.
func clampU64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

func clampInt32(v, lo, hi int) int32 {
	return int32(max(lo, min(hi, v)))
}

// guardSize keeps the marshalled status at or below maxBytes. It drops applications first, then
// containers, then PCI devices, then halves the longest remaining list, counting every dropped entry. The cheap
// upper-bound estimate keeps the common case free of marshalling.
func guardSize(st *v1alpha1.GuestAgentStatusStatus, l *limiter, maxBytes int) {
	if approxSize(st) <= maxBytes {
		return
	}
	for jsonSize(st) > maxBytes {
		if !shrinkOnce(st, l) {
			return
		}
	}
}

func jsonSize(st *v1alpha1.GuestAgentStatusStatus) int {
	b, err := json.Marshal(st)
	if err != nil {
		return math.MaxInt
	}
	return len(b)
}

// shrinkOnce drops one batch of entries; it returns false when nothing is left to drop.
func shrinkOnce(st *v1alpha1.GuestAgentStatusStatus, l *limiter) bool {
	switch {
	case len(st.Applications) > 0:
		addCount(&l.t.Applications, len(st.Applications))
		st.Applications = nil
	case len(st.Containers) > 0:
		addCount(&l.t.Containers, len(st.Containers))
		st.Containers = nil
	case len(st.PCIDevices) > 0:
		addCount(&l.t.PCIDevices, len(st.PCIDevices))
		st.PCIDevices = nil
	default:
		return halveLongest(st, l)
	}
	return true
}

func halveLongest(st *v1alpha1.GuestAgentStatusStatus, l *limiter) bool {
	n := []int{len(st.Interfaces), len(st.Filesystems), len(st.DiskMappings), len(st.Users)}
	longest := 0
	for i := range n {
		if n[i] > n[longest] {
			longest = i
		}
	}
	if n[longest] == 0 {
		return false
	}
	keep := n[longest] / 2
	switch longest {
	case 0:
		addCount(&l.t.Interfaces, n[0]-keep)
		st.Interfaces = st.Interfaces[:keep:keep]
	case 1:
		addCount(&l.t.Filesystems, n[1]-keep)
		st.Filesystems = st.Filesystems[:keep:keep]
	case 2:
		addCount(&l.t.DiskMappings, n[2]-keep)
		st.DiskMappings = st.DiskMappings[:keep:keep]
	case 3:
		addCount(&l.t.Users, n[3]-keep)
		st.Users = st.Users[:keep:keep]
	}
	return true
}

// approxSize is an upper bound of the JSON size of the guest data in st: every string byte may be
// escaped to six bytes (\u00XX), plus a generous per-element overhead for keys and punctuation.
func approxSize(st *v1alpha1.GuestAgentStatusStatus) int {
	const perElem = 64 // key, quotes and punctuation of one value, plus sibling numbers
	var s sizer
	s.add(st.Hostname, st.FQDN, st.Session)
	if o := st.OS; o != nil {
		s.add(o.Type, o.Name, o.ID, o.Version, o.VersionID, o.PrettyName, o.Variant,
			o.KernelRelease, o.KernelVersion, o.Arch)
	}
	if st.Timezone != nil {
		s.add(st.Timezone.Zone)
	}
	for _, u := range st.Users {
		s.add(u.Name, u.Domain)
	}
	for _, i := range st.Interfaces {
		s.add(i.Name, i.MAC)
		s.add(i.IPv4...)
		s.add(i.IPv6...)
	}
	for _, f := range st.Filesystems {
		s.add(f.Mountpoint, f.Type)
		s.add(f.Disks...)
	}
	for _, d := range st.DiskMappings {
		s.add(d.Serial, d.Device)
	}
	s.add(st.Applications...)
	for _, c := range st.Containers {
		s.add(c.ID, c.Image, c.Status, c.Command)
		s.add(c.Names...)
	}
	for _, d := range st.PCIDevices {
		s.add(d.DriverName, d.DriverVersion, d.DriverDate)
	}
	if ls := st.LastSession; ls != nil {
		s.add(ls.User)
	}
	if q := st.QemuAgent; q != nil {
		s.add(q.Version, q.LastError)
		s.add(q.SupportedCommands...)
		s.add(q.UnsupportedCommands...)
	}
	for _, e := range st.ExecutedCommands {
		s.add(e.Key)
	}
	return 6*s.bytes + perElem*s.elems + 16<<10 // fixed part: conditions, data groups, numbers
}

type sizer struct{ bytes, elems int }

func (s *sizer) add(v ...string) {
	for _, x := range v {
		s.bytes += len(x)
	}
	s.elems += len(v)
}
