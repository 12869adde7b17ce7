package qga

import (
	"slices"
)

// Caps is what guest-info says about the agent: its version and which commands are listed and
// enabled (only those are ever sent) or listed but disabled (e.g. blocked with qemu-ga -b).
type Caps struct {
	Version  string
	enabled  map[string]bool
	Disabled []string
}

func newCaps(ai *AgentInfo) *Caps {
	c := &Caps{Version: ai.Version, enabled: map[string]bool{}}
	for _, ci := range ai.SupportedCommands {
		if ci.Name == "" {
			continue
		}
		if ci.Enabled {
			c.enabled[ci.Name] = true
		} else {
			c.Disabled = append(c.Disabled, ci.Name)
		}
	}
	slices.Sort(c.Disabled)
	return c
}

// Enabled reports whether cmd is listed and enabled.
func (c *Caps) Enabled(cmd string) bool { return c != nil && c.enabled[cmd] }

// EnabledList returns the enabled commands, sorted.
func (c *Caps) EnabledList() []string {
	if c == nil {
		return nil
	}
	out := make([]string, 0, len(c.enabled))
	for k := range c.enabled {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
