// The FHIRPath syntax tree that compile() produces (Expression::root()): for code that compiles
// expressions further, such as the mapping engine's plans. Thread-safety: a tree is immutable once
// compiled and may be read from many threads.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "engine/fhirpath/fhirpath.h"

namespace switchboard::fhirpath {

namespace detail {

enum class ExprKind {
  kLiteral,   // literal value (value)
  kEmpty,     // {}
  kMember,    // name: child elements of the input (or a type name filter at the root)
  kFunction,  // name(args) on the input
  kThis,      // $this
  kIndex,     // $index
  kTotal,     // $total
  kVariable,  // %name
  kDot,       // children[0] . children[1]
  kIndexer,   // children[0] [ children[1] ]
  kUnary,     // op children[0]   (op "+" or "-")
  kBinary,    // children[0] op children[1]
  kTypeOp,    // children[0] is/as typeName
};

struct ExprNode {
  ExprKind kind = ExprKind::kLiteral;
  std::string name;  // member/function/variable name or operator
  std::string
      typeName;       // for kTypeOp and type arguments, qualified "FHIR.Patient" / "System.String"
  Node value;         // literal
  bool root = false;  // member at the start of a path (type name filter allowed)
  std::vector<std::unique_ptr<ExprNode>> children;
  std::size_t line = 1, column = 1;
  int fnId = -1;  // kFunction: the library function, numbered by compile()
};

}  // namespace detail

}  // namespace switchboard::fhirpath
