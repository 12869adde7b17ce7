package guest

import (
	"reflect"
	"testing"
)

// CopyGroup copies exactly the named group (the Info field of the same name), as a copy, and
// clears it in dst when src lacks it.
func TestCopyGroupCopiesOnlyThatGroup(t *testing.T) {
	src := &Info{}
	sv := reflect.ValueOf(src).Elem()
	for i := range sv.NumField() {
		sv.Field(i).Set(reflect.New(sv.Field(i).Type().Elem()))
	}
	if sv.NumField() != len(Groups) {
		t.Fatalf("Info has %d fields, Groups lists %d", sv.NumField(), len(Groups))
	}
	for _, g := range Groups {
		dst := &Info{}
		CopyGroup(dst, src, g)
		dv := reflect.ValueOf(dst).Elem()
		for i := range dv.NumField() {
			name := dv.Type().Field(i).Name
			f := dv.Field(i)
			switch {
			case name == string(g) && f.IsNil():
				t.Errorf("%s: not copied", g)
			case name == string(g) && f.Pointer() == sv.Field(i).Pointer():
				t.Errorf("%s: shared with the source, not copied", g)
			case name != string(g) && !f.IsNil():
				t.Errorf("copying %s also set %s", g, name)
			}
		}
		if !dst.Has(g) {
			t.Errorf("%s: Has is false after the copy", g)
		}
		CopyGroup(dst, &Info{}, g)
		if dst.Has(g) {
			t.Errorf("%s: still set after copying from a source without it", g)
		}
		CopyGroup(dst, nil, g)
		if dst.Has(g) {
			t.Errorf("%s: set after copying from nil", g)
		}
	}
}
