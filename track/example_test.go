package track_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gocarp/gocarp/track"
)

// printDemoter stands for a carp.Group or carp.FollowGroup.
type printDemoter struct{ changed chan struct{} }

func (p printDemoter) SetDemotion(source string, n int) {
	fmt.Println(source, n)
	p.changed <- struct{}{}
}

// A script tracker that demotes the group by 50 after two failures in a
// row and clears the demotion after three successes. Closing it clears
// the demotion too.
func Example() {
	d := printDemoter{changed: make(chan struct{}, 4)}
	tr, err := track.New(track.ShellScript("exit 1"), d, &track.Config{
		Name:     "nginx",
		Interval: 2 * time.Second,
		Timeout:  time.Second,
		Rise:     3,
		Fall:     2,
		Weight:   50,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := tr.Start(); err != nil {
		fmt.Println(err)
		return
	}
	<-d.changed // the first result sets the state at once
	tr.Close()
	// Output:
	// track:nginx 50
	// track:nginx 0
}

// CheckFunc makes any function a check.
func ExampleCheckFunc() {
	c := track.CheckFunc(func(ctx context.Context) error { return nil })
	fmt.Println(c.Check(context.Background()))
	// Output: <nil>
}
