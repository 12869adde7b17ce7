package oga

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"guestagent.io/operator/agentd/guest"
)

// MaxListEntries caps every list the model stores (applications, interfaces, addresses per
// interface, filesystems, disk mappings, containers, names per container). Entries beyond it are
// dropped. Deviation from VDSM, which stores whatever the guest sends: a hostile guest can send
// 100,000-entry lists in a 1 MiB line, and the model is kept for the domain's lifetime.
const MaxListEntries = 4096

// model is the per-domain OGA view of the guest: the agent-neutral Info plus the OGA-specific
// raw values needed to derive it. It is owned by an OvirtGuestAgent and guarded by its mutex.
type model struct {
	info guest.Info

	// rawUser is the last active-user name as sent ("None" = nobody), "" until one arrives
	// (VDSM's initial "Unknown").
	rawUser string

	// os-version and os-info are combined into info.OS (see deriveOS).
	osVersion    string
	hasOSVersion bool
	osInfo       osInfo
	hasOSInfo    bool

	// freeRAMMiB is heartbeat free-ram (VDSM memUsage); 0 after the idle timeout.
	freeRAMMiB uint64
}

type osInfo struct {
	version, distribution, codename, arch, typ, kernel string
}

// setText stores b into *dst if it differs and reports whether it changed. Comparing before
// converting keeps the common "unchanged" case allocation-free.
func setText(dst *string, b []byte) bool {
	if string(b) == *dst {
		return false
	}
	*dst = string(b)
	return true
}

func (m *model) sessionGroup() *guest.Session {
	if m.info.Session == nil {
		m.info.Session = &guest.Session{State: guest.SessionUnknown}
	}
	return m.info.Session
}

// deriveOS rebuilds info.OS from os-version and os-info and reports whether it changed.
//
// os-version carries the kernel release on Linux and the OS name on Windows; os-info (API ≥ 2)
// carries the structured fields. The OS group stays nil until either arrives.
func (m *model) deriveOS() bool {
	if !m.hasOSVersion && !m.hasOSInfo {
		return false
	}
	os := guest.OS{Type: guest.OSTypeUnknown}
	if m.hasOSInfo {
		oi := m.osInfo
		switch strings.ToLower(oi.typ) {
		case "linux":
			os.Type = guest.OSTypeLinux
		case "windows":
			os.Type = guest.OSTypeWindows
			os.ID = "mswindows"
		}
		os.Name = oi.distribution
		os.Version = oi.version
		os.VersionID = oi.version
		os.Variant = oi.codename
		os.KernelRelease = oi.kernel
		os.Arch = normaliseArch(oi.arch)
		os.PrettyName = prettyName(oi.distribution, oi.version, m.info.OS)
		if os.Type == guest.OSTypeLinux && oi.distribution != "" &&
			!strings.ContainsAny(oi.distribution, " \t") && strings.ToLower(oi.distribution) == oi.distribution {
			os.ID = oi.distribution // e.g. "debian"; "Red Hat Enterprise Linux" gives no ID
		}
	}
	if m.hasOSVersion {
		if os.Type == guest.OSTypeWindows {
			if os.Name == "" {
				os.Name = m.osVersion
			}
		} else if os.KernelRelease == "" {
			os.KernelRelease = m.osVersion
		}
	}
	if m.info.OS != nil && *m.info.OS == os {
		return false
	}
	m.info.OS = new(guest.OS) // a fresh pointer keeps os on the stack
	*m.info.OS = os
	return true
}

// prettyName returns strings.TrimSpace(distribution + " " + version), reusing the current
// PrettyName when it is the same so that an unchanged os-info or os-version allocates nothing.
func prettyName(distribution, version string, cur *guest.OS) string {
	var buf [128]byte
	if cur != nil && len(distribution)+1+len(version) <= len(buf) {
		b := append(append(append(buf[:0], distribution...), ' '), version...)
		if string(bytes.TrimSpace(b)) == cur.PrettyName {
			return cur.PrettyName
		}
	}
	return strings.TrimSpace(distribution + " " + version)
}

func normaliseArch(a string) string {
	switch strings.ToLower(a) {
	case "x86_64", "amd64", "x64":
		return "x86_64"
	case "i386", "i486", "i586", "i686", "x86":
		return "x86"
	case "aarch64", "arm64":
		return "aarch64"
	case "ppc64le", "ppc64", "ppcle", "ppc", "s390x":
		return strings.ToLower(a)
	}
	return "unknown"
}

// clearMemory implements VDSM's channel-timeout action (memUsage = 0). We drop the whole Memory
// group instead of zeroing one figure: after 30 s of silence none of the figures is current, and
// nil tells the service layer "no data from this source" so it can fall back to QGA.
func (m *model) clearMemory() bool {
	m.freeRAMMiB = 0
	if m.info.Memory == nil {
		return false
	}
	m.info.Memory = nil
	return true
}

func equalStrings(d *decoder, arr node, have []string) bool {
	n := min(int(arr.n), MaxListEntries)
	if n != len(have) {
		return false
	}
	for i := 0; i < n; i++ {
		b, ok := d.text(d.elem(arr, i))
		if !ok || string(b) != have[i] {
			return false
		}
	}
	return true
}

// stringList converts a JSON array into at most MaxListEntries strings; non-strings are skipped.
func stringList(d *decoder, arr node) []string {
	if arr.kind != kindArray {
		return []string{}
	}
	out := make([]string, 0, min(int(arr.n), MaxListEntries))
	for i := 0; i < int(arr.n) && len(out) < MaxListEntries; i++ {
		if b, ok := d.text(d.elem(arr, i)); ok {
			out = append(out, string(b))
		}
	}
	return out
}

func equalInterfaces(a, b []guest.Interface) bool {
	return slices.EqualFunc(a, b, func(x, y guest.Interface) bool {
		return x.Name == y.Name && x.MAC == y.MAC && slices.Equal(x.IPv4, y.IPv4) && slices.Equal(x.IPv6, y.IPv6)
	})
}

func equalFilesystems(a, b []guest.Filesystem) bool {
	return slices.EqualFunc(a, b, func(x, y guest.Filesystem) bool {
		return x.Mountpoint == y.Mountpoint && x.Type == y.Type && x.TotalBytes == y.TotalBytes &&
			x.UsedBytes == y.UsedBytes && x.HasUsage == y.HasUsage && slices.Equal(x.Disks, y.Disks)
	})
}

func equalContainers(a, b []guest.Container) bool {
	return slices.EqualFunc(a, b, func(x, y guest.Container) bool {
		return x.ID == y.ID && x.Image == y.Image && x.Status == y.Status && x.Command == y.Command &&
			slices.Equal(x.Names, y.Names)
	})
}

// nowOr returns t, or the current time when t is zero.
func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
