package e2e

func rtmSpec() linkSpec { return linkSpec{name: "rtm", na: allNA("todo")} }

func allNA(why string) map[string]string {
	m := map[string]string{}
	for _, k := range faultKinds {
		m[k] = why
	}
	return m
}
