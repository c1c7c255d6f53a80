package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// tfNumber is a template number: an int64 when both operands of an
// operation are integers, else a float64.
type tfNumber struct {
	i     int64
	f     float64
	isInt bool
}

func (n tfNumber) float() float64 {
	if n.isInt {
		return float64(n.i)
	}
	return n.f
}

func (n tfNumber) value() any {
	if n.isInt {
		return n.i
	}
	return n.f
}

// valueNumber reads ints, uints, floats, json.Number (secret data) and
// numeric strings. The error gives the type, never the value.
func valueNumber(v any) (tfNumber, error) {
	switch x := v.(type) {
	case json.Number:
		return parseNumberText(x.String())
	case string:
		return parseNumberText(strings.TrimSpace(x))
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return tfNumber{i: rv.Int(), isInt: true}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u := rv.Uint(); u <= math.MaxInt64 {
			return tfNumber{i: int64(u), isInt: true}, nil
		}
		return tfNumber{f: float64(rv.Uint())}, nil
	case reflect.Float32, reflect.Float64:
		return tfNumber{f: rv.Float()}, nil
	}
	if v == nil {
		return tfNumber{}, errors.New("not a number: nil")
	}
	return tfNumber{}, fmt.Errorf("not a number: %s", rv.Type())
}

func parseNumberText(s string) (tfNumber, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return tfNumber{i: i, isInt: true}, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return tfNumber{f: f}, nil
	}
	return tfNumber{}, errors.New("not a number")
}

// valueInt reads an integer argument.
func valueInt(v any) (int64, error) {
	n, err := valueNumber(v)
	if err != nil {
		return 0, err
	}
	if !n.isInt {
		return 0, errors.New("not an integer")
	}
	return n.i, nil
}

func compareNumbers(a, b tfNumber) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	switch af, bf := a.float(), b.float(); {
	case af < bf:
		return -1
	case af > bf:
		return 1
	}
	return 0
}

// arith applies op to a and b: integers stay integers.
func arith(a, b any, op byte) (any, error) {
	x, err := valueNumber(a)
	if err != nil {
		return nil, err
	}
	y, err := valueNumber(b)
	if err != nil {
		return nil, err
	}
	if x.isInt && y.isInt {
		return intArith(x.i, y.i, op)
	}
	xf, yf := x.float(), y.float()
	switch op {
	case '+':
		return xf + yf, nil
	case '-':
		return xf - yf, nil
	case '*':
		return xf * yf, nil
	case '/':
		if yf == 0 {
			return nil, errors.New("division by zero")
		}
		return xf / yf, nil
	}
	return nil, errors.New("modulo needs integers")
}

func intArith(x, y int64, op byte) (any, error) {
	switch op {
	case '+':
		return x + y, nil
	case '-':
		return x - y, nil
	case '*':
		return x * y, nil
	}
	if y == 0 {
		return nil, errors.New("division by zero")
	}
	if op == '/' {
		return x / y, nil
	}
	return x % y, nil
}

// fnAdd implements {{ add B A }}: A + B.
func fnAdd(b, a any) (any, error) { return arith(a, b, '+') }

// fnSub implements {{ sub A B }} as Sprig: A - B.
func fnSub(a, b any) (any, error) { return arith(a, b, '-') }

// fnSubtract implements {{ subtract B A }} as consul-template: A - B, so that
// {{ 7 | subtract 2 }} is 5.
func fnSubtract(b, a any) (any, error) { return arith(a, b, '-') }

// fnMultiply implements {{ multiply B A }}: A * B.
func fnMultiply(b, a any) (any, error) { return arith(a, b, '*') }

// fnDivide implements {{ divide B A }} as consul-template: A / B (integer
// division for integers), so that {{ 10 | divide 2 }} is 5.
func fnDivide(b, a any) (any, error) { return arith(a, b, '/') }

// fnModulo implements {{ modulo B A }} as consul-template: A % B.
func fnModulo(b, a any) (any, error) { return arith(a, b, '%') }

// fnMinimum implements {{ minimum B A }}: the smaller.
func fnMinimum(b, a any) (any, error) { return pickNumber(a, b, -1) }

// fnMaximum implements {{ maximum B A }}: the larger.
func fnMaximum(b, a any) (any, error) { return pickNumber(a, b, 1) }

func pickNumber(a, b any, want int) (any, error) {
	x, err := valueNumber(a)
	if err != nil {
		return nil, err
	}
	y, err := valueNumber(b)
	if err != nil {
		return nil, err
	}
	if compareNumbers(x, y) == want {
		return x.value(), nil
	}
	return y.value(), nil
}
