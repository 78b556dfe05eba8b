// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Members of the coalition on chain: home partner, the customer's own key, erasure.
/// @notice A member id is random (never derived from personal data). The partner that enrols a member
/// is its home partner. A member may hold a secp256k1 key (its signer); what it signs (EIP-712, with a
/// per-member nonce and a deadline) any partner may relay.
interface IMemberRegistry {
    /// @dev What partners vote on about a member. The numeric values are part of the external interface.
    enum VoteKind {
        ResetSigner,
        MoveHome,
        Erase
    }

    error MemberNotPartner(address account);
    error MemberNotDeployer(address account);
    error MemberAlreadyLinked();
    error MemberNotLinked(address account);
    error MemberInvalidMember();
    error MemberEmptyBatch();
    error MemberLengthMismatch();
    error MemberAlreadyEnrolled(bytes32 member, address home);
    error MemberUnknown(bytes32 member);
    error MemberIsErased(bytes32 member);
    error MemberAlreadyErased(bytes32 member);
    error MemberNotHomePartner(bytes32 member, address home, address account);
    error MemberZeroSigner();
    error MemberZeroAddress();
    error MemberSignerAlreadyBound(bytes32 member, address signer);
    error MemberNoSigner(bytes32 member);
    error MemberSignatureExpired(bytes32 member, uint256 deadline, uint256 now_);
    error MemberInvalidSignature(bytes32 member, address recovered, address signer);
    error MemberAlreadyVoted(bytes32 member, address newSigner, address voter);
    error MemberSameSigner(bytes32 member, address signer);
    error MemberResetQuorumNotReached(bytes32 member, address newSigner, uint256 votes, uint256 needed);
    error MemberSignerIsContract(address signer);
    error MemberDeadlineTooFar(bytes32 member, uint256 deadline, uint256 latest);
    error MemberSignatureRequired(bytes32 member);
    error MemberSameHome(bytes32 member, address home);
    error MemberHomeNotPartner(bytes32 member, address home);
    error MemberInvalidVote(uint8 kind, address target);

    event RegistryLinked(address consent, address loyalty);
    event MemberEnrolled(bytes32 indexed member, address indexed home, address signer);
    event SignerChanged(bytes32 indexed member, address indexed previous, address indexed signer, bool byVote);
    event SignerResetVoted(
        bytes32 indexed member,
        address indexed newSigner,
        address indexed voter,
        uint256 votes,
        uint256 partners
    );
    /// @dev A partner's vote to move a member's home (`target`: the new home) or to erase it (`target`
    /// zero); `votes` that count for it now, of `partners` current partners.
    event MemberVoted(
        bytes32 indexed member,
        VoteKind kind,
        address indexed target,
        address indexed voter,
        uint256 votes,
        uint256 partners
    );
    event HomeMoved(bytes32 indexed member, address indexed previous, address indexed home, bool byVote);
    event AuthorizationUsed(bytes32 indexed member, uint256 nonce, address indexed relayer);
    event MemberErased(bytes32 indexed member, address indexed home);

    /// @notice The member's home partner and signer; reverts MemberUnknown or MemberIsErased.
    function requireActive(bytes32 member) external view returns (address home, address signer);

    function nonceOf(bytes32 member) external view returns (uint256);

    /// @notice Check `signature` by the member's signer over the EIP-712 struct `structHash` (which
    /// includes `nonceOf(member)`), then use up the nonce. Only the linked contracts call this.
    function useAuthorization(
        bytes32 member,
        bytes32 structHash,
        uint256 deadline,
        bytes calldata signature
    ) external;
}

/// @notice What the registry tells the contracts it is linked to when a member is erased.
interface IErasureHook {
    function eraseMember(bytes32 member) external;
}
