package qga

import (
	"reflect"
	"testing"
	"time"
)

// Every field of State but the timestamps is part of the change comparison: a field added to
// State without being compared would make its changes invisible to the publisher.
func TestStateSameAsComparesEveryFieldButTimes(t *testing.T) {
	base := State{LastError: &CallError{Class: ErrTimeout, Command: CmdUsers, Message: "m", Time: time.Unix(1, 0)}}
	typ := reflect.TypeFor[State]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		o := base
		o.LastError = &CallError{Class: ErrTimeout, Command: CmdUsers, Message: "m", Time: time.Unix(1, 0)}
		v := reflect.ValueOf(&o).Elem().Field(i)
		switch f.Type.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"x"}))
		case reflect.Pointer:
			v.Set(reflect.ValueOf(&CallError{Class: ErrAgentError}))
		case reflect.Struct:
			v.Set(reflect.ValueOf(time.Unix(2, 0)))
		default:
			t.Fatalf("State.%s: kind %s not covered by this test", f.Name, f.Type.Kind())
		}
		wantSame := f.Name == "LastSuccess"
		if got := base.sameAs(o); got != wantSame {
			t.Errorf("State.%s changed: sameAs = %v, want %v", f.Name, got, wantSame)
		}
	}
	o := base
	o.LastError = &CallError{Class: ErrTimeout, Command: CmdUsers, Message: "m", Time: time.Unix(9, 0)}
	if !base.sameAs(o) {
		t.Error("a later occurrence of the same error is not a change")
	}
	for _, le := range []*CallError{nil, {Class: ErrTimeout, Command: CmdUsers, Message: "other"}, {Class: ErrTimeout, Command: CmdOSInfo, Message: "m"}} {
		o.LastError = le
		if base.sameAs(o) || o.sameAs(base) {
			t.Errorf("LastError %+v vs %+v reported the same", base.LastError, le)
		}
	}
}
