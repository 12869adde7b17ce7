package qga

import (
	"testing"
	"time"

	"libvirt.org/go/libvirt"
)

// frozenReply is what qemu-ga 7.2 answers for a command it disabled for a filesystem freeze.
func frozenReply(cmd string) *Error {
	return classifyAgentReply(cmd, &AgentReplyError{Class: "CommandNotFound",
		Desc: "Command " + cmd + " has been disabled: the agent is in frozen state"})
}

func TestFrozenIsNeverUnsupported(t *testing.T) {
	if c := frozenReply(CmdOSInfo).Class; c != ErrFrozen {
		t.Errorf("agent reply: class %s, want %s", c, ErrFrozen)
	}
	// libvirt wraps the agent's error text in its own error.
	lerr := libvirt.Error{Code: libvirt.ERR_AGENT_COMMAND_FAILED, Message: "guest agent command failed: unable to execute " +
		"QEMU agent command 'guest-get-osinfo': Command guest-get-osinfo has been disabled: the agent is in frozen state"}
	if c := ClassOf(classifyLibvirt(CmdOSInfo, lerr)); c != ErrFrozen {
		t.Errorf("libvirt error: class %s, want %s", c, ErrFrozen)
	}
	if c := classifyAgentReply(CmdOSInfo, &AgentReplyError{Class: "CommandNotFound", Desc: "The command guest-get-osinfo has not been found"}).Class; c != ErrUnsupported {
		t.Errorf("a really missing command: class %s, want %s", c, ErrUnsupported)
	}
}

// While frozen, qemu-ga lists most commands as disabled and refuses them. Nothing becomes
// unsupported, the freeze is reported, and after the thaw every group refreshes again.
func TestPollerFreezeLongerThanThreePeriods(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("g")
	h.api.add("g", g)
	h.doms.set(running("g"))
	h.step(t, 0)
	st, _ := h.p.State("g")
	if len(st.UnsupportedCommands) != 0 || st.FSFreeze != "" {
		t.Fatalf("before the freeze: %+v", st)
	}
	before := map[string]int{}
	for _, c := range []string{CmdUsers, CmdOSInfo, CmdHostName, CmdInterfaces, CmdVCPUs, CmdFSInfo, CmdDisks} {
		before[c] = h.api.count("g", c)
	}

	// Freeze: what qemu-ga 7.2 does (guest-info lists the disabled commands, they fail).
	h.api.mu.Lock()
	g.freeze = "frozen"
	g.caps = allCommands(CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices, CmdVCPUs, CmdFSInfo,
		CmdDisks, CmdShutdown, CmdFSFreeze, CmdFSFreezeList, CmdSetTime)
	for _, c := range []string{CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices, CmdVCPUs, CmdFSInfo, CmdDisks} {
		g.errs[c] = frozenReply(c)
	}
	h.api.mu.Unlock()
	period := 300 * time.Second // the longest poll period (capabilities)
	for range 4 {
		h.step(t, period)
		st, _ = h.p.State("g")
		if len(st.UnsupportedCommands) != 0 {
			t.Fatalf("frozen agent: unsupported = %v", st.UnsupportedCommands)
		}
		if st.FSFreeze != FreezeFrozen {
			t.Fatalf("frozen agent: fsFreeze = %q", st.FSFreeze)
		}
	}
	if st.LastError == nil || st.LastError.Class != ErrFrozen {
		t.Errorf("last error = %+v", st.LastError)
	}

	// Thaw: every group is asked again and refreshes; the state says thawed.
	h.api.mu.Lock()
	g.freeze = ""
	g.caps = allCommands()
	g.errs = map[string]error{}
	g.hostname = "after-thaw"
	h.api.mu.Unlock()
	mid := map[string]int{}
	for c := range before {
		mid[c] = h.api.count("g", c)
	}
	h.step(t, period)
	for c := range before {
		if h.api.count("g", c) <= mid[c] {
			t.Errorf("%s not asked again after the thaw", c)
		}
	}
	st, _ = h.p.State("g")
	info, _ := h.p.Info("g")
	if st.FSFreeze != FreezeThawed || len(st.UnsupportedCommands) != 0 || info.Hostname == nil || info.Hostname.Name != "after-thaw" {
		t.Errorf("after the thaw: state %+v, hostname %+v", st, info.Hostname)
	}
}
