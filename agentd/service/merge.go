package service

import (
	"regexp"
	"slices"
	"strings"

	"guestagent.io/operator/agentd/guest"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Precedence (after VDSM's GuestAgent.getGuestInfo, see qga-polling.md §6.9), per data group:
//
//	group          winner
//	Hostname       QGA, else OGA
//	OS             QGA, else OGA
//	Timezone       QGA, else OGA
//	Users          QGA, else OGA
//	Network        QGA, else OGA
//	Filesystems    QGA, else OGA
//	VCPUs          QGA, else OGA
//	PCIDevices     QGA only
//	Disks          union by serial; QGA wins per serial
//	Applications   QGA's synthetic entries (kernel-<release>, qemu-guest-agent-<version>) first,
//	               then OGA's list minus entries naming the kernel or the QEMU agent, de-duplicated
//	Session        OGA only
//	Memory         libvirt's balloon statistics when the guest reported them (total, usable,
//	               unused), else OGA, else libvirt's host-side figures alone (balloon size, RSS)
//	Containers     OGA only
//
// One deliberate improvement over VDSM: a group whose preferred source is not responsive while
// the other source is responsive and has the group is taken from the other source. When neither
// is responsive the preferred source's last known value is kept and the group is marked stale:
// data is never blanked because an agent went away.

// sourceData is one source's contribution to a merge.
type sourceData struct {
	source     gav1.DataSource
	info       *guest.Info
	responsive bool
}

// merged is the result of a merge.
type merged struct {
	info    *guest.Info
	sources map[guest.Group]gav1.DataSource
	stale   map[guest.Group]bool
}

// qgaFirstGroups are taken from QGA when it has them, else from OGA.
var qgaFirstGroups = []guest.Group{
	guest.GroupHostname, guest.GroupOS, guest.GroupTimezone, guest.GroupUsers, guest.GroupNetwork,
	guest.GroupFilesystems, guest.GroupVCPUs, guest.GroupPCIDevices,
	guest.GroupSession, guest.GroupContainers, // QGA never reports these
}

// agentAppPattern matches application entries that describe the kernel or the QEMU agent; QGA's
// synthetic entries replace them (VDSM's rule: anchored, case-insensitive).
var agentAppPattern = regexp.MustCompile(`(?i)^(qemu[ -](guest[ -]agent|ga)\b|kernel-)`)

// merge joins the QGA and OGA views of one domain, and libvirt's memory statistics (hv, whose
// info carries only the Memory group). No input is modified.
func merge(qga, oga, hv sourceData, qgaVersion string) merged {
	m := merged{info: &guest.Info{}, sources: map[guest.Group]gav1.DataSource{}, stale: map[guest.Group]bool{}}
	for _, g := range qgaFirstGroups {
		src, ok := pick(g, qga, oga)
		if !ok {
			continue
		}
		guest.CopyGroup(m.info, src.info, g)
		m.sources[g] = src.source
		if !src.responsive {
			m.stale[g] = true
		}
	}
	mergeMemory(&m, oga, hv)
	mergeDisks(&m, qga, oga)
	mergeApps(&m, qga, oga, qgaVersion)
	return m
}

// pick chooses the source of group g: QGA first, OGA second, a responsive source over a silent one.
func pick(g guest.Group, qga, oga sourceData) (sourceData, bool) {
	hasQ, hasO := qga.info.Has(g), oga.info.Has(g)
	switch {
	case hasQ && hasO:
		if !qga.responsive && oga.responsive {
			return oga, true
		}
		return qga, true
	case hasQ:
		return qga, true
	case hasO:
		return oga, true
	}
	return sourceData{}, false
}

// mergeMemory takes the Memory group from libvirt's balloon statistics when the guest reported
// its side of them, else from OGA, else libvirt's host-side figures (balloon size, RSS), which
// every running domain has and which join the OGA's figures too. A silent preferred source
// yields to a responsive one.
func mergeMemory(m *merged, oga, hv sourceData) {
	full := hv.info != nil && hv.info.Memory.HasGuestStats()
	hasO := oga.info.Has(guest.GroupMemory)
	var src sourceData
	switch {
	case full && (hv.responsive || !hasO || !oga.responsive):
		src = hv
	case hasO:
		src = oga
	case hv.info.Has(guest.GroupMemory):
		src = hv
	default:
		return
	}
	guest.CopyGroup(m.info, src.info, guest.GroupMemory)
	m.sources[guest.GroupMemory] = src.source
	if src.source != hv.source && hv.responsive && hv.info.Has(guest.GroupMemory) {
		// The balloon size and QEMU's RSS are host facts: kept beside the agent's guest figures.
		m.info.Memory.BalloonBytes = hv.info.Memory.BalloonBytes
		m.info.Memory.HostRSSBytes = hv.info.Memory.HostRSSBytes
	}
	if !src.responsive {
		m.stale[guest.GroupMemory] = true
	}
}

func mergeDisks(m *merged, qga, oga sourceData) {
	hasQ, hasO := qga.info.Has(guest.GroupDisks), oga.info.Has(guest.GroupDisks)
	if !hasQ && !hasO {
		return
	}
	bySerial := map[string]string{}
	var order []string
	add := func(list []guest.DiskMapping) {
		for _, d := range list {
			if d.Serial == "" {
				continue
			}
			if _, seen := bySerial[d.Serial]; !seen {
				order = append(order, d.Serial)
			}
			bySerial[d.Serial] = d.Device
		}
	}
	src := qga
	switch {
	case hasQ && hasO:
		add(oga.info.Disks.Mappings)
		add(qga.info.Disks.Mappings) // QGA wins per serial
	case hasQ:
		add(qga.info.Disks.Mappings)
	default:
		src = oga
		add(oga.info.Disks.Mappings)
	}
	out := &guest.Disks{Mappings: make([]guest.DiskMapping, 0, len(order))}
	for _, s := range order {
		out.Mappings = append(out.Mappings, guest.DiskMapping{Serial: s, Device: bySerial[s]})
	}
	m.info.Disks = out
	m.sources[guest.GroupDisks] = src.source
	if !src.responsive {
		m.stale[guest.GroupDisks] = true
	}
}

func mergeApps(m *merged, qga, oga sourceData, qgaVersion string) {
	var synthetic []string
	if qga.info != nil && qga.info.OS != nil && qga.info.OS.Type != guest.OSTypeWindows && qga.info.OS.KernelRelease != "" {
		synthetic = append(synthetic, "kernel-"+qga.info.OS.KernelRelease)
	}
	if qgaVersion != "" {
		synthetic = append(synthetic, "qemu-guest-agent-"+qgaVersion)
	}
	hasO := oga.info.Has(guest.GroupApplications)
	if len(synthetic) == 0 && !hasO {
		return
	}
	list := slices.Clone(synthetic)
	seen := map[string]bool{}
	for _, a := range list {
		seen[a] = true
	}
	if hasO {
		for _, a := range oga.info.Applications.List {
			a = strings.TrimSpace(a)
			if a == "" || seen[a] || (len(synthetic) > 0 && agentAppPattern.MatchString(a)) {
				continue
			}
			seen[a] = true
			list = append(list, a)
		}
	}
	m.info.Applications = &guest.Applications{List: list}
	src := qga
	if hasO {
		src = oga // the list is mostly OGA's; it is stale when OGA is
	}
	m.sources[guest.GroupApplications] = src.source
	if !src.responsive {
		m.stale[guest.GroupApplications] = true
	}
}
