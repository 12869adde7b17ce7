package publish

import "testing"

// The lifecycle's whole transition table, state × event → next state + action, written out so
// that a change of any transition is a visible change here. No API server involved.
func TestObjectLifecycleTransitions(t *testing.T) {
	type out struct {
		next objState
		act  objAction
	}
	states := []objState{stUnknown, stSeeded, stOwned, stMisowned, stLost, stForeign, stOptedOut}
	// One row per event, one column per state in the order of states.
	table := map[objEvent][7]out{
		evSync: {
			{stUnknown, actRead}, {stSeeded, actUseSeed}, {stOwned, actNone}, {stMisowned, actAdopt},
			{stLost, actReread}, {stForeign, actNone}, {stUnknown, actRead},
		},
		evMoved: {
			{stUnknown, actRead}, {stSeeded, actUseSeed}, {stUnknown, actMove}, {stUnknown, actMove},
			{stLost, actReread}, {stForeign, actMove}, {stUnknown, actRead},
		},
		evRecheckDue: {
			{stUnknown, actRead}, {stSeeded, actUseSeed}, {stOwned, actNone}, {stMisowned, actAdopt},
			{stLost, actReread}, {stForeign, actRecheck}, {stUnknown, actRead},
		},
		evFound: {
			{stOwned, actNone}, {stOwned, actNone}, {stOwned, actNone}, {stOwned, actNone},
			{stOwned, actNone}, {stOwned, actNone}, {stOwned, actNone},
		},
		evFoundStale: {
			{stMisowned, actAdopt}, {stMisowned, actAdopt}, {stMisowned, actAdopt}, {stMisowned, actAdopt},
			{stMisowned, actAdopt}, {stMisowned, actAdopt}, {stMisowned, actAdopt},
		},
		evOtherNode: {
			{stUnknown, actNone}, {stSeeded, actNone}, {stForeign, actNone}, {stForeign, actNone},
			{stForeign, actNone}, {stForeign, actNone}, {stOptedOut, actNone},
		},
		evMissing: {
			{stUnknown, actCreate}, {stUnknown, actNone}, {stUnknown, actNone}, {stUnknown, actNone},
			{stUnknown, actCreate}, {stUnknown, actCreate}, {stUnknown, actNone},
		},
		evWatch: {
			{stUnknown, actNone}, {stSeeded, actNone}, {stLost, actReread}, {stLost, actReread},
			{stLost, actReread}, {stLost, actReread}, {stOptedOut, actNone},
		},
		evListed: {
			{stSeeded, actNone}, {stSeeded, actNone}, {stOwned, actNone}, {stMisowned, actNone},
			{stLost, actNone}, {stForeign, actNone}, {stOptedOut, actNone},
		},
		evOptOut: {
			{stOptedOut, actDelete}, {stOptedOut, actDelete}, {stOptedOut, actDelete}, {stOptedOut, actDelete},
			{stOptedOut, actDelete}, {stOptedOut, actDelete}, {stOptedOut, actNone},
		},
		evCleanup: {
			{stUnknown, actNone}, {stUnknown, actDelete}, {stUnknown, actDelete}, {stUnknown, actDelete},
			{stUnknown, actDelete}, {stUnknown, actDelete}, {stOptedOut, actNone},
		},
	}
	if len(table) != len(eventNames) || len(states) != len(stateNames) {
		t.Fatalf("the table covers %d of %d events and %d of %d states", len(table), len(eventNames),
			len(states), len(stateNames))
	}
	for ev, row := range table {
		for i, s := range states {
			next, act := step(s, ev)
			if want := row[i]; next != want.next || act != want.act {
				t.Errorf("%s × %s → %s, %s; want %s, %s", s, ev, next, act, want.next, want.act)
			}
		}
	}
}

// Paths through the lifecycle as syncs walk them, event by event.
func TestObjectLifecyclePaths(t *testing.T) {
	type hop struct {
		ev   objEvent
		next objState
		act  objAction
	}
	type path struct {
		from objState
		hops []hop
	}
	paths := map[string]path{
		"first sight, no object: read, create": {stUnknown, []hop{
			{evSync, stUnknown, actRead}, {evMissing, stUnknown, actCreate}, {evFound, stOwned, actNone},
			{evSync, stOwned, actNone},
		}},
		"migrated in: the object names the source node and is adopted": {stUnknown, []hop{
			{evSync, stUnknown, actRead}, {evFoundStale, stMisowned, actAdopt}, {evFound, stOwned, actNone},
		}},
		"startup listing, then the watch saw it deleted: re-read, re-create": {stUnknown, []hop{
			{evListed, stSeeded, actNone}, {evSync, stSeeded, actUseSeed}, {evFound, stOwned, actNone},
			{evWatch, stLost, actReread}, {evMissing, stUnknown, actCreate}, {evFound, stOwned, actNone},
		}},
		"adopted by another node, re-read until it is gone, then created again": {stOwned, []hop{
			{evSync, stOwned, actNone}, {evOtherNode, stForeign, actNone}, {evSync, stForeign, actNone},
			{evRecheckDue, stForeign, actRecheck}, {evMissing, stUnknown, actCreate}, {evFound, stOwned, actNone},
		}},
		"placement changed: move, then read and create at the new place": {stOwned, []hop{
			{evMoved, stUnknown, actMove}, {evSync, stUnknown, actRead}, {evMissing, stUnknown, actCreate},
		}},
		"opt-out deletes once; opting in again reads the target place": {stOwned, []hop{
			{evOptOut, stOptedOut, actDelete}, {evOptOut, stOptedOut, actNone}, {evWatch, stOptedOut, actNone},
			{evSync, stUnknown, actRead},
		}},
		"domain removed": {stOwned, []hop{
			{evCleanup, stUnknown, actDelete}, {evCleanup, stUnknown, actNone},
		}},
	}
	for name, pt := range paths {
		e := &entry{state: pt.from}
		for i, h := range pt.hops {
			if act := e.on(h.ev); e.state != h.next || act != h.act {
				t.Errorf("%s: hop %d (%s) → %s, %s; want %s, %s", name, i, h.ev, e.state, act, h.next, h.act)
				break
			}
		}
	}
}

func TestObjectLifecycleNames(t *testing.T) {
	for s := range objState(len(stateNames)) {
		if s.String() == "" || s.String() == "objState(?)" {
			t.Errorf("state %d has no name", s)
		}
	}
	if got := objState(len(stateNames)).String(); got != "objState(?)" {
		t.Errorf("out-of-range state prints %q", got)
	}
	if objEvent(len(eventNames)).String() != "objEvent(?)" || objAction(len(actionNames)).String() != "objAction(?)" {
		t.Error("out-of-range event or action has a name")
	}
}
