package qga

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// vcpus builds a guest-get-vcpus reply from a compact form: one letter per vCPU, its logical id
// the index: 'O' online and offlinable, 'P' online and not offlinable (pinned), 'o' offline.
func vcpus(s string) []VCPU {
	out := make([]VCPU, 0, len(s))
	for i, c := range s {
		out = append(out, VCPU{LogicalID: i, Online: c != 'o', CanOffline: c != 'P'})
	}
	return out
}

func TestPlanVCPUs(t *testing.T) {
	tests := []struct {
		name        string
		in          []VCPU
		count       int
		online, off []int
		wantErr     string
	}{
		{name: "already there", in: vcpus("POOO"), count: 4},
		{name: "online lowest offline first", in: vcpus("POoooo"), count: 4, online: []int{2, 3}},
		{name: "offline highest first", in: vcpus("POOOoO"), count: 3, off: []int{3, 5}},
		{name: "down to one keeps vCPU 0", in: vcpus("POOO"), count: 1, off: []int{1, 2, 3}},
		{name: "vCPU 0 offlinable is still kept", in: vcpus("OOO"), count: 1, off: []int{1, 2}},
		{name: "skips pinned vCPUs", in: vcpus("POPOP"), count: 3, off: []int{1, 3}},
		{name: "everything online", in: vcpus("Pooo"), count: 4, online: []int{1, 2, 3}},
		{name: "offline vCPU 0 is onlined first", in: []VCPU{{0, false, true}, {1, true, true}}, count: 2, online: []int{0}},
		{name: "unsorted sparse ids", in: []VCPU{{8, true, true}, {0, true, false}, {4, false, true}, {2, true, true}}, count: 2, off: []int{8}},
		{name: "more than the guest has", in: vcpus("POoo"), count: 5, wantErr: "more than the 4 vCPUs the guest has (2 online)"},
		{name: "below the pinned ones", in: vcpus("POPP"), count: 2, wantErr: "fewer than the 3 online vCPUs the guest cannot take offline"},
		{name: "zero", in: vcpus("PO"), count: 0, wantErr: "at least one vCPU"},
		{name: "empty reply", in: nil, count: 1, wantErr: "no vCPUs"},
		{name: "nothing online", in: vcpus("ooo"), count: 1, wantErr: "none of its 3 vCPUs online"},
		{name: "duplicate id", in: []VCPU{{0, true, false}, {1, true, true}, {1, false, true}}, count: 1, wantErr: "vCPU 1 twice"},
		{name: "negative id", in: []VCPU{{0, true, false}, {-1, true, true}}, count: 1, wantErr: "vCPU id -1"},
		{name: "huge id", in: []VCPU{{0, true, false}, {1 << 20, false, true}}, count: 2, wantErr: "vCPU id 1048576"},
		{name: "too many entries", in: vcpus("P" + strings.Repeat("o", MaxGuestVCPUs)), count: 2, wantErr: "16385 vCPUs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			p, err := PlanVCPUs(tt.in, tt.count)
			if !slices.Equal(in, tt.in) {
				t.Fatal("PlanVCPUs modified its input")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Online, tt.online) || !slices.Equal(p.Offline, tt.off) || p.Count != tt.count {
				t.Fatalf("plan = %+v, want online %v offline %v", p, tt.online, tt.off)
			}
			if p.Empty() != (len(tt.online) == 0 && len(tt.off) == 0) {
				t.Fatalf("Empty() = %v for %+v", p.Empty(), p)
			}
		})
	}
}

func TestPlanVCPUsLargestGuest(t *testing.T) {
	in := vcpus("P" + strings.Repeat("O", 4095))
	p, err := PlanVCPUs(in, 1)
	if err != nil || len(p.Offline) != 4095 || p.Offline[0] != 1 || p.Offline[4094] != 4095 {
		t.Fatalf("plan = %d offline, %v", len(p.Offline), err)
	}
	if got := FormatCPUList(p.Offline); got != "1-4095" {
		t.Fatalf("cpulist = %q", got)
	}
	if !strings.Contains(p.String(), "vCPUs 1-4095 taken offline: 1 of the guest's vCPUs online (were 4096)") {
		t.Fatalf("description = %q", p.String())
	}
}

func TestFormatCPUList(t *testing.T) {
	for _, tt := range []struct {
		in   []int
		want string
	}{{nil, ""}, {[]int{0}, "0"}, {[]int{0, 1, 2, 3, 6}, "0-3,6"}, {[]int{1, 3, 5}, "1,3,5"}, {[]int{2, 3, 7, 8, 9}, "2-3,7-9"}} {
		if got := FormatCPUList(tt.in); got != tt.want {
			t.Errorf("FormatCPUList(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPollerSetVCPUs: the request reads the guest's vCPUs, changes only what the plan says,
// reads them back and publishes the new count; counts the guest cannot reach change nothing.
func TestPollerSetVCPUs(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("v")
	g.vcpus = vcpus("POOoo") // 0 pinned, 1-2 online, 3-4 offline
	h.api.add("v", g)
	h.doms.set(running("v"))
	h.step(t, 0)
	ctx := context.Background()
	online := func() int {
		t.Helper()
		info, ok := h.p.Info("v")
		if !ok || info.VCPUs == nil {
			t.Fatalf("no vCPU data: %+v", info)
		}
		return info.VCPUs.Online
	}
	if n := online(); n != 3 {
		t.Fatalf("polled %d online vCPUs, want 3", n)
	}

	plan, err := h.p.SetVCPUs(ctx, "v", 5)
	if err != nil || !slices.Equal(plan.Online, []int{3, 4}) {
		t.Fatalf("SetVCPUs(5) = %+v, %v", plan, err)
	}
	if n := online(); n != 5 {
		t.Fatalf("after SetVCPUs(5) the poller shows %d online vCPUs", n)
	}
	plan, err = h.p.SetVCPUs(ctx, "v", 2)
	if err != nil || !slices.Equal(plan.Offline, []int{2, 3, 4}) {
		t.Fatalf("SetVCPUs(2) = %+v, %v", plan, err)
	}
	plan, err = h.p.SetVCPUs(ctx, "v", 2)
	if err != nil || !plan.Empty() {
		t.Fatalf("SetVCPUs(2) again = %+v, %v", plan, err)
	}
	h.api.mu.Lock()
	sets := slices.Clone(h.api.vcpuSets)
	h.api.mu.Unlock()
	if want := []string{"v 3-4 online=true", "v 2-4 online=false"}; !slices.Equal(sets, want) {
		t.Fatalf("guest-set-vcpus calls = %q, want %q", sets, want)
	}

	for count, want := range map[int]string{6: "more than the 5 vCPUs the guest has", 0: "at least one vCPU"} {
		_, err := h.p.SetVCPUs(ctx, "v", count)
		if ClassOf(err) != ErrAgentError || !strings.Contains(err.Error(), want) {
			t.Errorf("SetVCPUs(%d): %v, want AgentError mentioning %q", count, err, want)
		}
	}
	h.api.mu.Lock()
	g.vcpus = vcpus("PPOo")
	h.api.mu.Unlock()
	if _, err := h.p.SetVCPUs(ctx, "v", 1); ClassOf(err) != ErrAgentError || !strings.Contains(err.Error(), "fewer than the 2 online vCPUs") {
		t.Errorf("below the pinned vCPUs: %v", err)
	}
	h.api.mu.Lock()
	n := len(h.api.vcpuSets)
	h.api.mu.Unlock()
	if n != 2 {
		t.Errorf("impossible counts sent guest-set-vcpus (%d calls)", n)
	}

	// A guest that claims success but changes nothing is caught by the read-back.
	h.api.mu.Lock()
	g.vcpuSetIgnored = true
	h.api.mu.Unlock()
	if _, err := h.p.SetVCPUs(ctx, "v", 4); ClassOf(err) != ErrAgentError || !strings.Contains(err.Error(), "reports 3 vCPUs online afterwards, not 4") {
		t.Errorf("ignored guest-set-vcpus: %v", err)
	}

	// guest-set-vcpus (or guest-get-vcpus) disabled in guest-info: never sent, Unsupported.
	h.api.mu.Lock()
	g.vcpuSetIgnored = false
	g.caps = allCommands(CmdSetVCPUs)
	h.api.mu.Unlock()
	h.step(t, 300*time.Second) // capabilities are re-read
	if _, err := h.p.SetVCPUs(ctx, "v", 4); ClassOf(err) != ErrUnsupported {
		t.Errorf("disabled guest-set-vcpus: %v", err)
	}
	h.api.mu.Lock()
	g.caps = allCommands(CmdVCPUs)
	h.api.mu.Unlock()
	h.step(t, 300*time.Second)
	if _, err := h.p.SetVCPUs(ctx, "v", 4); ClassOf(err) != ErrUnsupported || !strings.Contains(err.Error(), CmdVCPUs) {
		t.Errorf("disabled guest-get-vcpus: %v", err)
	}
	if _, err := h.p.SetVCPUs(ctx, "nope", 1); ClassOf(err) != ErrDomainNotRunning {
		t.Errorf("unknown domain: %v", err)
	}
}
