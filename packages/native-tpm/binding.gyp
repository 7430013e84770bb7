{
  "targets": [
    {
      "target_name": "geofence_tpm",
      "sources": [
        "native/addon.cc",
        "native/ops.cc",
        "native/templates.cc",
        "native/state.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": [],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter", "<!@(pkg-config --cflags tss2-esys tss2-mu tss2-rc tss2-tctildr tss2-sys)"],
      "libraries": ["<!@(pkg-config --libs tss2-esys tss2-mu tss2-rc tss2-tctildr tss2-sys)"],
      "conditions": [
        ["'<!(node -p \"process.env.GEOFENCE_TPM_ASAN || ''\")'=='1'", {
          "cflags_cc": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address"]
        }]
      ]
    }
  ]
}
