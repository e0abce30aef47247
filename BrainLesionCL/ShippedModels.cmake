# Which model files the Slicer extension installs: defaults.json and the one default segmentation model it names.
# The older demonstration versions stay in the repository and the Python package (benchmarks and tests use them) but
# not in the extension, which would otherwise carry four 18 MB models. Used by CMakeLists.txt, and run by a test with
# `cmake -P` (Testing/Python/test_packaging.py), so the list is checked without building Slicer.
function(brainlesioncl_shipped_models source_dir out_var)
  set(_models "Lib/brainlesioncl/default_models")
  file(READ "${source_dir}/${_models}/defaults.json" _defaults)
  string(JSON _default GET "${_defaults}" segmentation)
  file(GLOB_RECURSE _files RELATIVE "${source_dir}" "${source_dir}/${_models}/${_default}/*")
  if(NOT _files)
    message(FATAL_ERROR "defaults.json names ${_default}, which has no files under ${_models}/${_default}.")
  endif()
  list(SORT _files)
  set(${out_var} "${_models}/defaults.json;${_files}" PARENT_SCOPE)
endfunction()
