package publish

// The lifecycle of one domain's object, as the worker that syncs the domain knows it. The state
// says what the publisher believes of the object; events are what a sync observes or decides; step
// is the one transition function and returns the next state with the action it asks for. The
// functions that talk to the API (sync.go, gone.go) report what they saw with entry.on and run the
// returned action; status building (build.go) never looks at the state.

// objState is what the publisher knows of a domain's object.
type objState uint8

const (
	// stUnknown: nothing is known; the target place is read and the object created if missing.
	stUnknown objState = iota
	// stSeeded: the startup listing returned the object (entry.seedObj); it is used without a read.
	stSeeded
	// stOwned: the object is at ns/name with this node's labels, owner reference and spec.
	stOwned
	// stMisowned: the object is at ns/name, but its labels, owner reference or spec are not (all)
	// this node's, as after a migration from another node: it is adopted.
	stMisowned
	// stLost: the object was at ns/name, but the watch saw it go or change under the publisher (or
	// its place is about to be cleaned up): it is re-read before anything else.
	stLost
	// stForeign: another node adopted the object at ns/name: it is not written, only re-read every
	// Options.ForeignRecheck.
	stForeign
	// stOptedOut: the domain opted out and its object was deleted.
	stOptedOut
	// stAbsent: the startup listing succeeded and did not return the object: it is created without
	// a read (a new domain costs one write less). If it exists after all (created or adopted
	// elsewhere since the listing), the create says so and it is read.
	stAbsent
)

var stateNames = [...]string{"Unknown", "Seeded", "Owned", "Misowned", "Lost", "Foreign", "OptedOut", "Absent"}

func (s objState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "objState(?)"
}

// located reports whether the state places the object at entry.ns/entry.name.
func (s objState) located() bool {
	return s == stOwned || s == stMisowned || s == stLost || s == stForeign
}

// objEvent is what a sync observed or decided about the object.
type objEvent uint8

const (
	// evSync: a sync of a published domain whose object is (believed) at its target place.
	evSync objEvent = iota
	// evMoved: the same, but the domain's target place (namespace or name) changed.
	evMoved
	// evRecheckDue: evSync for a foreign object whose re-read interval has passed.
	evRecheckDue
	// evFound: a read or write shows the object with this node's identity.
	evFound
	// evFoundStale: a read shows the object without (all of) this node's identity; its spec may
	// name another node.
	evFoundStale
	// evOtherNode: a re-read shows that another node adopted the object.
	evOtherNode
	// evMissing: a read or write says the object does not exist.
	evMissing
	// evWatch: the watch saw the object go, or change at a version this node did not write.
	evWatch
	// evListed: the startup listing returned the object.
	evListed
	// evOptOut: the domain opted out: its object is deleted (at its place, the listing's, or the
	// target place) and no longer written.
	evOptOut
	// evCleanup: the domain left this node: its object is deleted if its place is known.
	evCleanup
	// evNotListed: the startup listing succeeded without the object.
	evNotListed
	// evExists: a create says the object exists already.
	evExists
)

var eventNames = [...]string{"Sync", "Moved", "RecheckDue", "Found", "FoundStale", "OtherNode", "Missing",
	"Watch", "Listed", "OptOut", "Cleanup", "NotListed", "Exists"}

func (ev objEvent) String() string {
	if int(ev) < len(eventNames) {
		return eventNames[ev]
	}
	return "objEvent(?)"
}

// objAction is what a transition asks the sync to do next.
type objAction uint8

const (
	actNone    objAction = iota // nothing: the object is as wanted (or must be left alone)
	actRead                     // read the target place (found: learn it; missing: create)
	actUseSeed                  // learn the object from the startup listing, without a read
	actCreate                   // create the object at the target place
	actAdopt                    // rewrite labels, owner reference and spec to this node's
	actReread                   // re-read the object at its place (it went missing or changed)
	actRecheck                  // re-read a foreign object at the target place
	actMove                     // delete the object at its old place; it is created at the new one
	actDelete                   // delete the object at its place, if it still names this node
)

var actionNames = [...]string{"None", "Read", "UseSeed", "Create", "Adopt", "Reread", "Recheck", "Move", "Delete"}

func (a objAction) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "objAction(?)"
}

// step is the lifecycle's transition function: the state after ev in state s, and the action the
// sync runs next. Events that say nothing in a state leave it unchanged with actNone. The next
// state is entered at once; only a failed actMove or actDelete puts the state back as it was
// (the object is still where it was), and a read or write reports its outcome as a further event.
func step(s objState, ev objEvent) (objState, objAction) {
	switch ev {
	case evSync:
		switch s {
		case stUnknown:
			return stUnknown, actRead
		case stSeeded:
			return stSeeded, actUseSeed
		case stMisowned:
			return stMisowned, actAdopt
		case stLost:
			return stLost, actReread
		case stOptedOut: // published again: it may exist from before the opt-out
			return stUnknown, actRead
		case stAbsent:
			return stAbsent, actCreate
		}
	case evMoved:
		switch s {
		case stOwned, stMisowned:
			return stUnknown, actMove
		case stForeign: // not deleted (it is not ours), but no longer looked at
			return stForeign, actMove
		case stLost: // re-read at the old place first: it may be foreign or gone by now
			return stLost, actReread
		}
		return step(s, evSync)
	case evRecheckDue:
		if s == stForeign {
			return stForeign, actRecheck
		}
		return step(s, evSync)
	case evFound:
		return stOwned, actNone
	case evFoundStale:
		return stMisowned, actAdopt
	case evOtherNode:
		if s.located() {
			return stForeign, actNone
		}
	case evMissing:
		switch s {
		case stUnknown, stLost, stForeign, stAbsent:
			return stUnknown, actCreate
		}
		return stUnknown, actNone
	case evWatch:
		if s.located() {
			return stLost, actReread
		}
	case evListed:
		if s == stUnknown || s == stAbsent {
			return stSeeded, actNone
		}
	case evNotListed:
		if s == stUnknown {
			return stAbsent, actNone
		}
	case evExists:
		return stUnknown, actRead
	case evOptOut:
		if s == stOptedOut {
			return stOptedOut, actNone
		}
		return stOptedOut, actDelete
	case evCleanup:
		if s == stSeeded || s.located() {
			return stUnknown, actDelete
		}
	}
	return s, actNone
}

// on records ev in e's state and returns the action the transition asks for.
func (e *entry) on(ev objEvent) objAction {
	var a objAction
	e.state, a = step(e.state, ev)
	return a
}
