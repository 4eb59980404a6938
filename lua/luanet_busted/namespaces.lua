-- luassert's registry: namespaces.assertion / .modifier / .matcher, each
-- name -> { callback, name, positive_message, negative_message }.
return { assertion = {}, modifier = {}, matcher = {} }
