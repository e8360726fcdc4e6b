// A syntax error on line 3 (tests/js/node/test_bundle.py).
export default {
  mutators: {a() { let x = ; }},
};
