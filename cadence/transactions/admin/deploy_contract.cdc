/// Deploys a contract without initializer arguments to the signer's account
/// (FlowNetToken, FlowNetOutput), or updates it when it exists.
transaction(name: String, code: String) {
    prepare(admin: auth(AddContract, UpdateContract) &Account) {
        if admin.contracts.get(name: name) == nil {
            admin.contracts.add(name: name, code: code.utf8)
        } else {
            admin.contracts.update(name: name, code: code.utf8)
        }
    }
}
