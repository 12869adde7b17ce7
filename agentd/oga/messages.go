package oga

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"time"

	"guestagent.io/operator/agentd/guest"
)

// Guest → host message names (§1.4 of the protocol reference).
const (
	MsgHeartbeat         = "heartbeat"
	MsgHostName          = "host-name"
	MsgOSVersion         = "os-version"
	MsgOSInfo            = "os-info"
	MsgTimezone          = "timezone"
	MsgNetworkInterfaces = "network-interfaces"
	MsgApplications      = "applications"
	MsgActiveUser        = "active-user"
	MsgSessionLogon      = "session-logon"
	MsgSessionLock       = "session-lock"
	MsgSessionUnlock     = "session-unlock"
	MsgSessionLogoff     = "session-logoff"
	MsgSessionStartup    = "session-startup"
	MsgSessionShutdown   = "session-shutdown"
	MsgFQDN              = "fqdn"
	MsgDisksUsage        = "disks-usage"
	MsgNumberOfCPUs      = "number-of-cpus"
	MsgContainers        = "containers"
	MsgCompletion        = "completion"
	MsgUninstalled       = "uninstalled"
	MsgEcho              = "echo"
	MsgMemoryStats       = "memory-stats"
)

// lineResult is what handling one line did. Byte slices are valid until the next parse.
type lineResult struct {
	err     error // the line was dropped (bad JSON, not an object, no __name__)
	valid   bool  // parsed JSON object with __name__: counts as agent activity
	unknown bool  // __name__ not understood (including echo/memory-stats, which VDSM ignores too)
	changed bool  // the model's guest data changed

	// Negotiation (heartbeats only).
	apiChanged  bool
	apiFrom     int
	apiTo       int
	apiInvalid  bool // unparsable apiVersion string (VDSM: WARNING, treated as 0)
	sendVersion int  // > 0: send api-version with this value

	completion []byte // reply_id of a completion message

	// cpus is the count of a number-of-cpus message (-1: the guest cannot tell); cpusSet says
	// one arrived with an integer count.
	cpus    int64
	cpusSet bool
}

// errNoName is returned for a JSON object without a string __name__ field.
var errNoName = errorString("JSON message has no __name__")

type errorString string

func (e errorString) Error() string { return string(e) }

// handleLine parses one line and applies it to m. apiVersion is the domain's effective
// negotiated version and is updated in place. now stamps login/logout times.
//
// Deviations from VDSM, deliberately:
//   - valid JSON without __name__, or JSON that is not an object, drops just that line (VDSM
//     loses the rest of the 64 KiB chunk through an escaping exception);
//   - a field of the wrong type is ignored on its own; the rest of the message is applied (VDSM
//     aborts the handler at the first ValueError, e.g. "free-ram": "12.5");
//   - a __name__ that is not a string is an unknown message (VDSM compares it to names too).
func (m *model) handleLine(d *decoder, line []byte, apiVersion *int, now time.Time) (r lineResult) {
	if looksLikeHeartbeat(line) && m.fastHeartbeat(d, line, apiVersion, &r) {
		return r
	}
	return m.handleLineGeneral(d, line, apiVersion, now)
}

// handleLineGeneral is handleLine without the heartbeat fast path: parse the whole line into the
// decoder's arena, then dispatch on __name__.
func (m *model) handleLineGeneral(d *decoder, line []byte, apiVersion *int, now time.Time) (r lineResult) {
	root, err := d.parse(line)
	if err != nil {
		r.err = err
		return r
	}
	nameNode, ok := d.get(root, "__name__")
	if !ok {
		r.err = errNoName
		return r
	}
	r.valid = true
	name, ok := d.text(nameNode)
	if !ok {
		r.unknown = true
		return r
	}
	switch string(name) {
	case MsgHeartbeat:
		r.changed = m.heartbeat(d, root)
		m.negotiate(d, root, apiVersion, &r)
	case MsgHostName:
		if b, ok := d.getText(root, "name"); ok {
			r.changed = m.setHostname(b, false)
		}
	case MsgFQDN:
		if b, ok := d.getText(root, "fqdn"); ok {
			r.changed = m.setHostname(b, true)
		}
	case MsgOSVersion:
		if b, ok := d.getText(root, "version"); ok {
			m.hasOSVersion = true
			setText(&m.osVersion, b)
			r.changed = m.deriveOS()
		}
	case MsgOSInfo:
		m.hasOSInfo = true
		oi := &m.osInfo
		for _, f := range [...]struct {
			key string
			dst *string
		}{{"version", &oi.version}, {"distribution", &oi.distribution}, {"codename", &oi.codename},
			{"arch", &oi.arch}, {"type", &oi.typ}, {"kernel", &oi.kernel}} {
			b, _ := d.getText(root, f.key)
			setText(f.dst, b)
		}
		r.changed = m.deriveOS()
	case MsgTimezone:
		r.changed = m.timezone(d, root)
	case MsgNetworkInterfaces:
		r.changed = m.networkInterfaces(d, root)
	case MsgApplications:
		r.changed = m.applications(d, root)
	case MsgUninstalled:
		if m.info.Applications == nil || len(m.info.Applications.List) > 0 {
			m.info.Applications = &guest.Applications{List: []string{}}
			r.changed = true
		}
	case MsgActiveUser:
		if b, ok := d.getText(root, "name"); ok {
			r.changed = m.activeUser(b, now)
		}
	case MsgSessionLogon:
		r.changed = m.setSession(guest.SessionLoggedOn)
	case MsgSessionLock:
		r.changed = m.setSession(guest.SessionLocked)
	case MsgSessionUnlock:
		r.changed = m.setSession(guest.SessionActive)
	case MsgSessionLogoff:
		r.changed = m.setSession(guest.SessionLoggedOff)
	case MsgSessionStartup, MsgSessionShutdown:
		// VDSM only logs these at debug level.
	case MsgDisksUsage:
		r.changed = m.disksUsage(d, root)
	case MsgNumberOfCPUs:
		if v, ok := d.get(root, "count"); ok {
			// count is -1 when the guest cannot tell; that is no data, not a value.
			if n, ok := d.intOf(v); ok {
				r.cpus, r.cpusSet = n, true
			}
			if n, ok := d.intOf(v); ok && n >= 0 && n <= math.MaxInt32 {
				if m.info.VCPUs == nil || m.info.VCPUs.Online != int(n) {
					m.info.VCPUs = &guest.VCPUs{Online: int(n)}
					r.changed = true
				}
			}
		}
	case MsgContainers:
		r.changed = m.containers(d, root)
	case MsgCompletion:
		if b, ok := d.getText(root, "reply_id"); ok {
			r.completion = b
		}
	default:
		// echo, memory-stats and anything else: VDSM logs "Unknown message type".
		r.unknown = true
	}
	return r
}

func (m *model) setHostname(b []byte, fqdn bool) bool {
	// Groups are mutated in place: Info() always hands out deep copies.
	if m.info.Hostname == nil {
		m.info.Hostname = &guest.Hostname{}
	}
	if fqdn {
		return setText(&m.info.Hostname.FQDN, b)
	}
	return setText(&m.info.Hostname.Name, b)
}

func (m *model) setSession(s guest.SessionState) bool {
	if m.info.Session != nil && m.info.Session.State == s {
		return false
	}
	m.sessionGroup().State = s
	return true
}

// heartbeat applies free-ram and memory-stat (sizes in KiB) to the Memory group.
//
// Mapping: FreeBytes = memory-stat.mem_free (MemFree+Buffers+Cached, the guest's own figure),
// falling back to free-ram MiB; UnusedBytes = mem_unused, etc. VDSM's quirk of reporting
// mem_free = mem_unused is a presentation choice for Engine and is not copied: both figures are
// published separately here. swap_usage/swap_total (ignored by VDSM) fill the swap figures.
// The per-second rates (swap_in, swap_out, pageflt, majflt) fill the rate fields.
func (m *model) heartbeat(d *decoder, root node) bool {
	freeRAM, hasFree := d.get(root, "free-ram")
	var st memStat
	haveStat := false
	if v, ok := d.get(root, "memory-stat"); ok && v.kind == kindObject {
		haveStat = true
		for i := 0; i < int(v.n); i++ {
			k, val := d.member(v, i)
			if n, ok := d.uintOf(val); ok {
				st.set(d.bytes(k), n)
			}
		}
	}
	return m.applyHeartbeat(d, freeRAM, hasFree, &st, haveStat)
}

// memStat accumulates the figures of one memory-stat object, member by member in line order (a
// later duplicate key overrides an earlier one).
type memStat struct {
	mem  guest.Memory
	free bool // mem_free was given: it takes precedence over free-ram
}

// set applies one memory-stat member whose value is the non-negative integer n (KiB).
func (s *memStat) set(key []byte, n uint64) {
	switch string(key) {
	case "mem_total":
		s.mem.TotalBytes = kib(n, 1024)
	case "mem_unused":
		s.mem.UnusedBytes = kib(n, 1024)
	case "mem_free":
		s.mem.FreeBytes, s.free = kib(n, 1024), true
	case "mem_buffers":
		s.mem.BuffersBytes = kib(n, 1024)
	case "mem_cached":
		s.mem.CachedBytes = kib(n, 1024)
	case "swap_total":
		s.mem.SwapTotalBytes = kib(n, 1024)
	case "swap_usage":
		s.mem.SwapUsedBytes = kib(n, 1024)
	case "swap_in":
		s.mem.SwapInRate, s.mem.HasRates = n, true
	case "swap_out":
		s.mem.SwapOutRate, s.mem.HasRates = n, true
	case "pageflt":
		s.mem.PageFaultRate, s.mem.HasRates = n, true
	case "majflt":
		s.mem.MajorPageFaultRate, s.mem.HasRates = n, true
	}
}

// applyHeartbeat stores the Memory group of a heartbeat: the (last) memory-stat object st if
// haveStat (st is zero otherwise), with FreeBytes from free-ram unless memory-stat gave mem_free.
func (m *model) applyHeartbeat(d *decoder, freeRAM node, hasFree bool, st *memStat, haveStat bool) bool {
	mem := st.mem
	if hasFree {
		if n, ok := d.intOf(freeRAM); ok && n >= 0 {
			m.freeRAMMiB = uint64(n)
			if !st.free {
				mem.FreeBytes = kib(uint64(n), 1<<20)
			}
		}
	}
	if mem == (guest.Memory{}) && !haveStat {
		return false
	}
	if m.info.Memory != nil {
		if *m.info.Memory == mem {
			return false
		}
		*m.info.Memory = mem
		return true
	}
	m.info.Memory = new(guest.Memory) // a fresh pointer keeps mem on the stack
	*m.info.Memory = mem
	return true
}

// kib multiplies n by unit, saturating instead of overflowing.
func kib(n, unit uint64) uint64 {
	if n > math.MaxUint64/unit {
		return math.MaxUint64
	}
	return n * unit
}

// negotiate applies §3 of the protocol reference for one heartbeat.
func (m *model) negotiate(d *decoder, root node, apiVersion *int, r *lineResult) {
	v, present := d.get(root, "apiVersion")
	m.negotiateValue(d, v, present, apiVersion, r)
}

// negotiateValue is negotiate for the heartbeat's apiVersion value v (present false: absent).
func (m *model) negotiateValue(d *decoder, v node, present bool, apiVersion *int, r *lineResult) {
	common := 0
	if present {
		var res apiVersionResult
		common, res = d.parseAPIVersion(v)
		switch res {
		case apiIgnored:
			return
		case apiInvalid:
			r.apiInvalid = true
		}
	} else if *apiVersion == 0 {
		return
	}
	// Absent field: a pre-versioning agent, so the common version is 0 (sent nothing, VDSM too).
	if common == *apiVersion {
		return
	}
	r.apiChanged, r.apiFrom, r.apiTo = true, *apiVersion, common
	*apiVersion = common
	if present && common != 0 {
		r.sendVersion = common
	}
}

func (m *model) timezone(d *decoder, root node) bool {
	tz := guest.Timezone{}
	if m.info.Timezone != nil {
		tz = *m.info.Timezone
	}
	changed := m.info.Timezone == nil
	if b, ok := d.getText(root, "zone"); ok {
		changed = setText(&tz.Zone, b) || changed
	}
	if v, ok := d.get(root, "offset"); ok {
		if n, ok := d.intOf(v); ok && n >= -24*60 && n <= 24*60 && int(n) != tz.OffsetMinutes {
			tz.OffsetMinutes = int(n)
			changed = true
		}
	}
	if changed {
		m.info.Timezone = &tz
	}
	return changed
}

func (m *model) networkInterfaces(d *decoder, root node) bool {
	arr, _ := d.get(root, "interfaces")
	if m.info.Network != nil && sameInterfaces(d, arr, m.info.Network.Interfaces) {
		return false // the common case, checked without allocating
	}
	list := []guest.Interface{}
	if arr.kind == kindArray {
		for i := 0; i < int(arr.n) && len(list) < MaxListEntries; i++ {
			e := d.elem(arr, i)
			if e.kind != kindObject {
				continue
			}
			var itf guest.Interface
			if b, ok := d.getText(e, "name"); ok {
				itf.Name = string(b)
			}
			if b, ok := d.getText(e, "hw"); ok {
				itf.MAC = strings.ToLower(string(b))
			}
			v4, _ := d.get(e, "inet")
			itf.IPv4 = stringList(d, v4)
			v6, _ := d.get(e, "inet6")
			itf.IPv6 = stringList(d, v6)
			list = append(list, itf)
		}
	}
	if m.info.Network != nil && equalInterfaces(m.info.Network.Interfaces, list) {
		return false
	}
	m.info.Network = &guest.Network{Interfaces: list}
	return true
}

func (m *model) applications(d *decoder, root node) bool {
	arr, _ := d.get(root, "applications")
	if arr.kind != kindArray {
		arr = node{kind: kindArray}
	}
	if m.info.Applications != nil && equalStrings(d, arr, m.info.Applications.List) {
		return false
	}
	m.info.Applications = &guest.Applications{List: stringList(d, arr)}
	return true
}

// activeUser applies VDSM's rule: a new name replaces the current one unless the guest says
// "Unknown" while the current one is "None". Deviation: "None" (and "") mean nobody is logged in
// and yield an empty Users list instead of a user called "None"; "Unknown" leaves the Users group
// as it is (the guest does not know). A Windows "user@domain" is split into Name and Domain.
func (m *model) activeUser(b []byte, now time.Time) bool {
	if string(b) == m.rawUser {
		return false
	}
	if string(b) == "Unknown" && m.rawUser == "None" {
		return false
	}
	prev := m.rawUser
	m.rawUser = string(b)
	switch m.rawUser {
	case "Unknown":
		return false
	case "None", "":
		if isRealUser(prev) {
			s := m.copySession()
			s.LastUser = prev
			s.LastLogout = nowOr(now)
		}
		m.info.Users = &guest.Users{List: []guest.User{}}
		return true
	}
	u := guest.User{Name: m.rawUser, LoginTime: nowOr(now)}
	if i := bytes.LastIndexByte(b, '@'); i > 0 && i < len(b)-1 {
		u.Name, u.Domain = string(b[:i]), string(b[i+1:])
	}
	if isRealUser(prev) {
		s := m.copySession()
		s.LastUser = prev
	}
	s := m.copySession()
	s.LastLogin = u.LoginTime
	m.info.Users = &guest.Users{List: []guest.User{u}}
	return true
}

func isRealUser(n string) bool { return n != "" && n != "None" && n != "Unknown" }

func (m *model) copySession() *guest.Session {
	s := guest.Session{State: guest.SessionUnknown}
	if m.info.Session != nil {
		s = *m.info.Session
	}
	m.info.Session = &s
	return m.info.Session
}

// disksUsage maps disks → Filesystems and mapping → Disks (sorted by serial for stable output).
// Sizes are exact uint64 (they can reach 2^64-1); a disk without both sizes has HasUsage false.
func (m *model) disksUsage(d *decoder, root node) bool {
	changed := false
	arr, _ := d.get(root, "disks")
	if m.info.Filesystems != nil && sameFilesystems(d, arr, m.info.Filesystems.List) {
		// The usual case: the same filesystems with new figures, updated in place (Info hands
		// out deep copies) without converting any string.
		changed = updateUsage(d, arr, m.info.Filesystems.List)
	} else {
		fs := []guest.Filesystem{}
		if arr.kind == kindArray {
			for i := 0; i < int(arr.n) && len(fs) < MaxListEntries; i++ {
				e := d.elem(arr, i)
				if e.kind != kindObject {
					continue
				}
				var f guest.Filesystem
				if b, ok := d.getText(e, "path"); ok {
					f.Mountpoint = string(b)
				}
				if b, ok := d.getText(e, "fs"); ok {
					f.Type = string(b)
				}
				f.TotalBytes, f.UsedBytes, f.HasUsage = usage(d, e)
				fs = append(fs, f)
			}
		}
		if m.info.Filesystems == nil || !equalFilesystems(m.info.Filesystems.List, fs) {
			m.info.Filesystems = &guest.Filesystems{List: fs}
			changed = true
		}
	}
	mp, _ := d.get(root, "mapping")
	if m.info.Disks != nil && sameMappings(d, mp, m.info.Disks.Mappings) {
		return changed
	}
	maps := []guest.DiskMapping{}
	if mp.kind == kindObject {
		// Walk backwards so that, after a stable sort and compaction (which keeps the first of
		// equal serials), the last duplicate wins, like a JSON object read by Python.
		for i := int(mp.n) - 1; i >= 0 && len(maps) < MaxListEntries; i-- {
			k, v := d.member(mp, i)
			dev, _ := d.getText(v, "name")
			maps = append(maps, guest.DiskMapping{Serial: string(d.bytes(k)), Device: string(dev)})
		}
		slices.SortStableFunc(maps, func(a, b guest.DiskMapping) int { return strings.Compare(a.Serial, b.Serial) })
		maps = slices.CompactFunc(maps, func(a, b guest.DiskMapping) bool { return a.Serial == b.Serial })
	}
	if m.info.Disks == nil || !slices.Equal(m.info.Disks.Mappings, maps) {
		m.info.Disks = &guest.Disks{Mappings: maps}
		changed = true
	}
	return changed
}

// usage reads a disks entry's sizes; a disk without both sizes has no usage.
func usage(d *decoder, e node) (total, used uint64, ok bool) {
	tv, ok1 := d.get(e, "total")
	uv, ok2 := d.get(e, "used")
	if ok1 && ok2 {
		t, ok1 := d.uintOf(tv)
		u, ok2 := d.uintOf(uv)
		if ok1 && ok2 {
			return t, u, true
		}
	}
	return 0, 0, false
}

// sameFilesystems reports whether the disks array arr lists exactly the mountpoints and types of
// have, in order (figures aside), so that updateUsage can apply it in place.
func sameFilesystems(d *decoder, arr node, have []guest.Filesystem) bool {
	if arr.kind != kindArray {
		return false
	}
	k := 0
	for i := 0; i < int(arr.n) && k < MaxListEntries; i++ {
		e := d.elem(arr, i)
		if e.kind != kindObject {
			continue
		}
		if k >= len(have) {
			return false
		}
		path, _ := d.getText(e, "path")
		fs, _ := d.getText(e, "fs")
		if h := have[k]; string(path) != h.Mountpoint || string(fs) != h.Type || h.Disks != nil {
			return false
		}
		k++
	}
	return k == len(have)
}

// updateUsage applies the figures of arr to have (see sameFilesystems) and reports a change.
func updateUsage(d *decoder, arr node, have []guest.Filesystem) bool {
	changed := false
	k := 0
	for i := 0; i < int(arr.n) && k < len(have); i++ {
		e := d.elem(arr, i)
		if e.kind != kindObject {
			continue
		}
		f := &have[k]
		k++
		t, u, ok := usage(d, e)
		if f.TotalBytes != t || f.UsedBytes != u || f.HasUsage != ok {
			f.TotalBytes, f.UsedBytes, f.HasUsage = t, u, ok
			changed = true
		}
	}
	return changed
}

// maxCheckedMappings bounds the quadratic no-allocation comparison of sameMappings; larger
// mappings are rebuilt and compared instead.
const maxCheckedMappings = 64

// sameMappings reports whether the mapping object mp would give exactly have (sorted, unique
// serials, the last duplicate winning), without building the list.
func sameMappings(d *decoder, mp node, have []guest.DiskMapping) bool {
	if mp.kind != kindObject {
		return len(have) == 0
	}
	if mp.n > maxCheckedMappings {
		return false
	}
	distinct := 0
	for i := 0; i < int(mp.n); i++ {
		k, _ := d.member(mp, i)
		if lastMember(d, mp, d.bytes(k)) == i {
			distinct++
		}
	}
	if distinct != len(have) {
		return false
	}
	for _, h := range have {
		i := lastMember(d, mp, []byte(h.Serial))
		if i < 0 {
			return false
		}
		_, v := d.member(mp, i)
		if dev, _ := d.getText(v, "name"); string(dev) != h.Device {
			return false
		}
	}
	return true
}

// lastMember returns the index of the last member of obj whose key is key, or -1.
func lastMember(d *decoder, obj node, key []byte) int {
	for i := int(obj.n) - 1; i >= 0; i-- {
		if k, _ := d.member(obj, i); string(d.bytes(k)) == string(key) {
			return i
		}
	}
	return -1
}

func (m *model) containers(d *decoder, root node) bool {
	arr, _ := d.get(root, "list")
	list := []guest.Container{}
	if arr.kind == kindArray {
		for i := 0; i < int(arr.n) && len(list) < MaxListEntries; i++ {
			e := d.elem(arr, i)
			if e.kind != kindObject {
				continue
			}
			var c guest.Container
			for _, f := range [...]struct {
				key string
				dst *string
			}{{"id", &c.ID}, {"image", &c.Image}, {"status", &c.Status}, {"command", &c.Command}} {
				if b, ok := d.getText(e, f.key); ok {
					*f.dst = string(b)
				}
			}
			names, _ := d.get(e, "names")
			c.Names = stringList(d, names)
			list = append(list, c)
		}
	}
	if m.info.Containers != nil && equalContainers(m.info.Containers.List, list) {
		return false
	}
	m.info.Containers = &guest.Containers{List: list}
	return true
}

// sameInterfaces reports whether arr would decode to exactly have.
func sameInterfaces(d *decoder, arr node, have []guest.Interface) bool {
	if arr.kind != kindArray {
		return false
	}
	k := 0
	for i := 0; i < int(arr.n) && k < MaxListEntries; i++ {
		e := d.elem(arr, i)
		if e.kind != kindObject {
			continue
		}
		if k >= len(have) {
			return false
		}
		h := have[k]
		k++
		name, _ := d.getText(e, "name")
		hw, _ := d.getText(e, "hw")
		if string(name) != h.Name || !equalFoldASCII(hw, h.MAC) {
			return false
		}
		v4, _ := d.get(e, "inet")
		v6, _ := d.get(e, "inet6")
		if !sameStringList(d, v4, h.IPv4) || !sameStringList(d, v6, h.IPv6) {
			return false
		}
	}
	return k == len(have)
}

// sameStringList reports whether stringList(d, arr) would equal have.
func sameStringList(d *decoder, arr node, have []string) bool {
	if arr.kind != kindArray {
		return len(have) == 0
	}
	k := 0
	for i := 0; i < int(arr.n) && k < MaxListEntries; i++ {
		b, ok := d.text(d.elem(arr, i))
		if !ok {
			continue
		}
		if k >= len(have) || string(b) != have[k] {
			return false
		}
		k++
	}
	return k == len(have)
}

// equalFoldASCII reports whether strings.ToLower(string(b)) == lower.
func equalFoldASCII(b []byte, lower string) bool {
	return strings.ToLower(string(b)) == lower
}
