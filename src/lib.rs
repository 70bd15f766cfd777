//! admin-provisioner
