package publish

import (
	"maps"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// carryOver keeps the last published content of a data group for which the desired state has
// no data — after an agentd restart (nothing polled yet), while an agent is disconnected or hung,
// between an agent's reconnect and its first poll of the group, or when a domain stops. Such a
// group is published as before and marked stale, so good data is never blanked by an absence of
// news. Content changes only when a source reports new content for the group (an empty list
// included); the group goes away with the domain's object. It returns the carried groups.
func carryOver(d *Desired, info *guest.Info, st, prev *v1alpha1.GuestAgentStatusStatus) map[guest.Group]bool {
	var carried map[guest.Group]bool
	for _, g := range guest.Groups {
		if info.Has(g) {
			continue
		}
		p := findGroup(prev.DataGroups, string(g))
		if p == nil {
			continue
		}
		copyGroup(st, prev, g)
		if carried == nil {
			carried = map[guest.Group]bool{}
		}
		carried[g] = true
	}
	return carried
}

// copyGroup copies the fields publishing group g from prev into st.
func copyGroup(st, prev *v1alpha1.GuestAgentStatusStatus, g guest.Group) {
	p := prev.DeepCopy()
	switch g {
	case guest.GroupHostname:
		st.Hostname, st.FQDN = p.Hostname, p.FQDN
	case guest.GroupOS:
		st.OS = p.OS
	case guest.GroupTimezone:
		st.Timezone = p.Timezone
	case guest.GroupUsers:
		st.Users = p.Users
	case guest.GroupSession:
		st.Session, st.LastSession = p.Session, p.LastSession
	case guest.GroupNetwork:
		st.Interfaces = p.Interfaces
	case guest.GroupFilesystems:
		st.Filesystems = p.Filesystems
	case guest.GroupDisks:
		st.DiskMappings = p.DiskMappings
	case guest.GroupVCPUs:
		st.VCPUs = p.VCPUs
	case guest.GroupMemory:
		st.Memory = p.Memory
	case guest.GroupApplications:
		st.Applications = p.Applications
	case guest.GroupContainers:
		st.Containers = p.Containers
	case guest.GroupPCIDevices:
		st.PCIDevices = p.PCIDevices
	}
}

// withCarried returns d with the carried groups marked stale and sourced as before.
func withCarried(d *Desired, carried map[guest.Group]bool, prev *v1alpha1.GuestAgentStatusStatus) *Desired {
	if len(carried) == 0 {
		return d
	}
	out := *d
	out.Stale = maps.Clone(d.Stale)
	out.Sources = maps.Clone(d.Sources)
	if out.Stale == nil {
		out.Stale = map[guest.Group]bool{}
	}
	if out.Sources == nil {
		out.Sources = map[guest.Group]v1alpha1.DataSource{}
	}
	out.carried = carried
	for g := range carried {
		out.Stale[g] = true
		if p := findGroup(prev.DataGroups, string(g)); p != nil {
			out.Sources[g] = p.Source
		}
	}
	return &out
}
