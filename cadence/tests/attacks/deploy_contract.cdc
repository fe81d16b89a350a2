/// Any account deploys a contract of its own: how the attack suite puts
/// FlowNetHostile on an ordinary account.
transaction(name: String, code: String) {
    prepare(signer: auth(AddContract) &Account) {
        signer.contracts.add(name: name, code: code.utf8)
    }
}
