package oga

import (
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// genStream builds a deterministic OGA stream with the message mix, schedule and formatting of
// the reference stream of docs/benchmarks-oga.md (a RHEL 8 guest at API 3: Python json.dumps separators, the
// real agent's key orders; heartbeat every 5 s, active-user every 10 s, number-of-cpus every
// 60 s, the applications group every 120 s, disks-usage every 300 s, refresh bursts every 4 h,
// lock/unlock and logoff/logon sessions, NIC and package changes). It mirrors the generator's
// structure, not its exact random sequence, so the bytes differ but the mix is the same.
func genStream(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6f6761))
	between := func(lo, hi int) int { return lo + r.IntN(hi-lo+1) }
	chance := func(p float64) bool { return r.Float64() < p }

	const host = "vm-042.lab.example.com"
	kernels := []string{"4.18.0-513.24.1.el8_9", "4.18.0-513.18.1.el8_9", "4.18.0-477.27.1.el8_8"}
	user := "alice"
	memUnused, memBuffers, memCached, swapUsage := 3900000, 4200, 2100000, 0
	gib := []int{40, 1, 100}
	diskUsed := []int{int(40 * (1 << 30) * 42 / 100), int(1 * (1 << 30) * 31 / 100), int(100 * (1 << 30) * 18 / 100)}
	nics, appExtra := 3, 0

	var out []string
	emit := func(s string) { out = append(out, s+"\n") }
	q := func(s string) string { return `"` + s + `"` }
	list := func(xs []string) string {
		qs := make([]string, len(xs))
		for i, x := range xs {
			qs[i] = q(x)
		}
		return "[" + strings.Join(qs, ", ") + "]"
	}
	heartbeat := func() {
		memUnused = max(200000, min(6500000, memUnused+between(-60000, 60000)))
		memBuffers = max(1000, min(400000, memBuffers+between(-500, 600)))
		memCached = max(300000, min(4000000, memCached+between(-20000, 22000)))
		if chance(0.01) {
			swapUsage = max(0, min(2097148, swapUsage+between(-4096, 8192)))
		}
		free := memUnused + memBuffers + memCached
		swapIn, swapOut, majflt := 0, 0, 0
		if chance(0.02) {
			swapIn = between(1, 40)
		}
		if chance(0.02) {
			swapOut = between(1, 80)
		}
		if chance(0.05) {
			majflt = between(1, 30)
		}
		emit(fmt.Sprintf(`{"__name__": "heartbeat", "memory-stat": {"swap_out": %d, "majflt": %d, "swap_usage": %d, "mem_cached": %d, "mem_free": %d, "mem_buffers": %d, "swap_in": %d, "swap_total": 2097148, "pageflt": %d, "mem_total": 7886516, "mem_unused": %d}, "free-ram": "%d", "apiVersion": 3}`,
			swapOut, majflt, swapUsage, memCached, free, memBuffers, swapIn, between(20, 6000), memUnused, free/1024))
	}
	activeUser := func() { emit(`{"__name__": "active-user", "name": ` + q(user) + `}`) }
	hostName := func() { emit(`{"__name__": "host-name", "name": "` + host + `"}`) }
	osVersion := func() { emit(`{"__name__": "os-version", "version": "` + kernels[0] + `.x86_64"}`) }
	osInfo := func() {
		emit(`{"kernel": "` + kernels[0] + `.x86_64", "type": "linux", "version": "8.9", "__name__": "os-info", "distribution": "Red Hat Enterprise Linux", "arch": "x86_64", "codename": "Ootpa"}`)
	}
	timezone := func() { emit(`{"__name__": "timezone", "zone": "Europe/Prague", "offset": 60}`) }
	fqdn := func() { emit(`{"__name__": "fqdn", "fqdn": "` + host + `"}`) }
	cpus := func() { emit(`{"__name__": "number-of-cpus", "count": 4}`) }
	containers := func() { emit(`{"__name__": "containers", "list": []}`) }
	session := func(s string) { emit(`{"__name__": "session-` + s + `"}`) }
	netIfaces := func() {
		all := []string{
			`{"hw": "56:6f:1a:2b:00:2a", "inet6": ["fe80::546f:1aff:fe2b:2a", "2001:db8:10::2a"], "inet": ["10.10.0.42"], "name": "eth0"}`,
			`{"hw": "56:6f:1a:2b:00:2b", "inet6": ["fe80::546f:1aff:fe2b:2b"], "inet": ["192.168.122.42"], "name": "eth1"}`,
			`{"hw": "56:6f:1a:2b:00:2c", "inet6": ["fe80::546f:1aff:fe2b:2c"], "inet": ["172.16.5.42", "172.16.5.142"], "name": "eth2"}`,
			`{"hw": "56:6f:1a:2b:00:2d", "inet6": ["fe80::546f:1aff:fe2b:2d", "fd00:5::2d"], "inet": ["10.20.0.42"], "name": "eth3"}`,
		}
		emit(`{"__name__": "network-interfaces", "interfaces": [` + strings.Join(all[:nics], ", ") + `]}`)
	}
	applications := func() {
		k := kernels[0]
		apps := []string{"kernel-" + kernels[0], "kernel-" + kernels[1], "kernel-" + kernels[2],
			"kernel-core-" + k, "kernel-modules-" + k, "kernel-tools-" + k, "kernel-headers-" + k, "kernel-devel-" + k,
			"ovirt-guest-agent-common-1.0.16-1.el8", "qemu-guest-agent-6.2.0-41.module+el8.9.0+21055+d7c14fcb",
			"cloud-init-23.1.1-11.el8_9.1", "xorg-x11-drv-qxl-0.1.5-11.el8", "spice-vdagent-0.20.0-4.el8",
			"NetworkManager-1.40.16-15.el8_9", "openssh-server-8.0p1-19.el8_9.2", "systemd-239-78.el8",
			"glibc-2.28-236.el8_9.12", "python3-libs-3.6.8-56.el8_9.3", "tuned-2.21.0-1.el8_9", "insights-client-3.2.2-1.el8_9"}
		if appExtra > 0 {
			apps = append(apps, "podman-4.6.1-8.module+el8.9.0+21243+a586538b")
		}
		slices.SortFunc(apps, func(a, b string) int {
			ha, hb := md5.Sum([]byte(a)), md5.Sum([]byte(b))
			return strings.Compare(string(ha[:]), string(hb[:]))
		})
		emit(`{"applications": ` + list(apps) + `, "__name__": "applications"}`)
	}
	disks := func() {
		paths := [][2]string{{"/", "xfs"}, {"/boot", "xfs"}, {"/home", "xfs"}}
		var ds []string
		for i, p := range paths {
			total := gib[i]*(1<<30) - 4096*(17+i)
			diskUsed[i] = max(1<<26, min(total, diskUsed[i]+between(-1<<24, 1<<25)))
			ds = append(ds, fmt.Sprintf(`{"path": "%s", "total": %d, "used": %d, "fs": "%s"}`, p[0], total, diskUsed[i], p[1]))
		}
		emit(`{"__name__": "disks-usage", "disks": [` + strings.Join(ds, ", ") + `], "mapping": {"b5d7c1a2-93e4-4f0b-a": {"name": "/dev/vda"}, "0e6f2a9c-71b8-44d5-9": {"name": "/dev/vdb"}}}`)
	}
	refresh := func() {
		session("startup")
		activeUser()
		applications()
		containers()
		hostName()
		osVersion()
		netIfaces()
		disks()
		fqdn()
		timezone()
		osInfo()
	}

	refresh()
	hb, us, ap, dk, cp := 5, 10, 120, 300, 60
	lockUntil, logonAt := -1, -1
	for t := 1; len(out) < n; t++ {
		if lockUntil < 0 && logonAt < 0 && chance(1.0/3600) {
			session("lock")
			lockUntil = t + between(300, 1800)
		} else if lockUntil >= 0 && t >= lockUntil {
			session("unlock")
			lockUntil = -1
		}
		if logonAt < 0 && lockUntil < 0 && chance(1.0/(8*3600)) {
			user = "None"
			session("logoff")
			activeUser()
			logonAt = t + between(60, 3600)
		} else if logonAt >= 0 && t >= logonAt {
			user = []string{"alice", "alice", "root"}[r.IntN(3)]
			activeUser()
			session("logon")
			logonAt = -1
		}
		if t%(4*3600) == 0 {
			refresh()
		}
		if chance(1.0 / (24 * 3600)) {
			kernels = []string{fmt.Sprintf("4.18.0-513.%d.1.el8_9", between(25, 40)), kernels[0], kernels[1]}
			appExtra = r.IntN(2)
		}
		if chance(1.0 / (6 * 3600)) {
			nics = []int{2, 3, 3, 4}[r.IntN(4)]
		}
		if hb--; hb <= 0 {
			heartbeat()
			hb = 5
		}
		if us--; us <= 0 {
			activeUser()
			us = 10
		}
		if ap--; ap <= 0 {
			applications()
			containers()
			hostName()
			osVersion()
			netIfaces()
			fqdn()
			ap = 120
		}
		if dk--; dk <= 0 {
			disks()
			dk = 300
		}
		if cp--; cp <= 0 {
			cpus()
			cp = 60
		}
	}
	return []byte(strings.Join(out[:n], ""))
}
