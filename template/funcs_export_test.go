package template

import "sort"

// FuncNames lists the functions a template may call, for the external
// tests.
func FuncNames() []string {
	names := make([]string, 0, len(parseFuncs()))
	for name := range parseFuncs() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
